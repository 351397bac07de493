"""One reader per source format: Markdown, plain text, HTML, PDF and the eval-set docs.jsonl.

Each reader turns the raw bytes of one file into documents. HTML and PDF become Markdown (headings
from <h1>..<h6> or from the PDF outline), so one heading-aware chunker splits every format.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.documents import (
    SourceDocument,
    UnreadableSource,
    content_hash,
    decode_text,
    first_heading,
    split_front_matter,
)


@dataclass
class Parsed:
    """What one file gave: its documents, and the records in it that could not be read."""

    documents: list[SourceDocument]
    problems: list[tuple[str, str]] = field(default_factory=list)


Reader = Callable[[bytes, Path, str, str | None], Parsed]


def read_text_file(raw: bytes, path: Path, source: str, product: str | None) -> Parsed:
    """Markdown or plain text; front matter (--- yaml ---) supplies product, title and version."""
    meta, body = split_front_matter(decode_text(raw))
    if not body.strip():
        raise UnreadableSource("file has no text after its front matter")
    kind = "markdown" if path.suffix.lower() in (".md", ".markdown") else "text"
    return Parsed([_document(meta, body, kind, path, source, product, content_hash(raw))])


def read_html(raw: bytes, path: Path, source: str, product: str | None) -> Parsed:
    """HTML through BeautifulSoup and markdownify: headings, lists and tables survive."""
    from bs4 import BeautifulSoup
    from markdownify import MarkdownConverter

    if b"\x00" in raw[:4096]:
        raise UnreadableSource("file looks binary")
    soup = BeautifulSoup(raw, "html.parser")
    meta = {
        str(tag.get("name")).lower(): str(tag.get("content"))
        for tag in soup.find_all("meta")
        if tag.get("name") and tag.get("content")
    }
    if soup.title and soup.title.string:
        meta.setdefault("title", soup.title.string.strip())
    canonical = soup.find("link", rel="canonical")
    if canonical and canonical.get("href"):
        meta.setdefault("url", str(canonical.get("href")))
    for tag in soup(["script", "style", "noscript", "template", "nav", "head"]):
        tag.decompose()
    converter = MarkdownConverter(heading_style="ATX", bullets="-", strip=["a", "img"])
    body = converter.convert_soup(soup).strip()
    if not body:
        raise UnreadableSource("HTML page has no text")
    return Parsed([_document(meta, body, "markdown", path, source, product, content_hash(raw))])


def read_pdf(raw: bytes, path: Path, source: str, product: str | None) -> Parsed:
    """PDF text with pypdf, page by page; the outline (bookmarks) becomes Markdown headings."""
    from pypdf import PdfReader

    try:  # an untrusted file through a third-party parser: any failure means "unreadable"
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableSource("PDF is encrypted")
        headings = _outline_by_page(reader)
        texts = [(page.extract_text() or "").strip() for page in reader.pages]
        info: Any = reader.metadata or {}
    except UnreadableSource:
        raise
    except Exception as exc:
        raise UnreadableSource(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
    if not any(texts):
        raise UnreadableSource("PDF has no extractable text (a scan without OCR?)")
    body = "\n\n".join(
        "\n\n".join([*headings.get(i, []), text]).strip() for i, text in enumerate(texts)
    )
    meta = {"title": str(info.get("/Title") or "").strip(), "product": info.get("/Product")}
    meta = {k: v for k, v in meta.items() if v}
    return Parsed([_document(meta, body, "markdown", path, source, product, content_hash(raw))])


def _outline_by_page(reader: Any) -> dict[int, list[str]]:
    """Outline entries as Markdown headings, keyed by the page they start on."""
    found: dict[int, list[str]] = {}

    def walk(items: list[Any], depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
                continue
            page = reader.get_destination_page_number(item)
            if page is not None and page >= 0 and item.title:
                found.setdefault(page, []).append("#" * min(depth, 6) + " " + item.title.strip())

    walk(list(reader.outline or []), 1)
    return found


def read_jsonl(raw: bytes, path: Path, source: str, product: str | None) -> Parsed:
    """The eval-set docs.jsonl: one {"id","title","text","url"?,"product"?} document a line."""
    lines = decode_text(raw).splitlines()
    _refuse_questions(lines)
    parsed = Parsed([])
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = _record(json.loads(line), number, source, product)
        except (json.JSONDecodeError, UnreadableSource) as exc:
            parsed.problems.append((f"{source}:{number}", str(exc)))
            continue
        if doc.document_id in seen:
            parsed.problems.append((f"{source}:{number}", f"duplicate id {doc.document_id!r}"))
            continue
        seen.add(doc.document_id)
        parsed.documents.append(doc)
    if not parsed.documents and not parsed.problems:
        raise UnreadableSource("file has no records")
    return parsed


def _refuse_questions(lines: list[str]) -> None:
    """An eval set's questions.jsonl beside its docs.jsonl is one failure, not one per line."""
    first = next((line for line in lines if line.strip()), "")
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return
    if isinstance(record, dict) and "question" in record and "text" not in record:
        raise UnreadableSource("holds questions, not documents (an eval set's questions.jsonl?)")


def _record(record: Any, number: int, source: str, product: str | None) -> SourceDocument:
    if not isinstance(record, dict):
        raise UnreadableSource("line is not a JSON object")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise UnreadableSource('record has no "text"')
    doc_id = str(record.get("id") or f"line-{number}")
    title = str(record.get("title") or doc_id)
    kind = "markdown" if record.get("format") == "markdown" else "text"
    return SourceDocument(
        source=f"{source}#{doc_id}",
        text=text,
        kind=kind,
        title=title,
        product=record.get("product") or product,
        version=str(record["version"]) if record.get("version") is not None else None,
        content_hash=content_hash(json.dumps(record, sort_keys=True, ensure_ascii=False)),
        url=record.get("url"),
        doc_id=doc_id,
    )


def _document(
    meta: dict[str, Any],
    body: str,
    kind: str,
    path: Path,
    source: str,
    product: str | None,
    digest: str,
) -> SourceDocument:
    title = meta.get("title") or (first_heading(body) if kind == "markdown" else None)
    return SourceDocument(
        source=source,
        text=body,
        kind=kind,
        title=str(title or path.stem.replace("-", " ").replace("_", " ")),
        product=meta.get("product") or product,
        version=str(meta["version"]) if meta.get("version") is not None else None,
        content_hash=digest,
        url=meta.get("url"),
    )


READERS: dict[str, Reader] = {
    "markdown": read_text_file,
    "text": read_text_file,
    "html": read_html,
    "pdf": read_pdf,
    "jsonl": read_jsonl,
}
