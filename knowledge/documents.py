"""Read source files into documents: text plus metadata (product, title, version)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

TEXT_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text"}
MAX_SOURCE_BYTES = 5 * 1024 * 1024


class UnreadableSource(Exception):
    """A file that cannot be ingested; the message says why."""


@dataclass(frozen=True)
class SourceDocument:
    """One source file, decoded, with its metadata."""

    source: str
    text: str
    kind: str
    title: str
    product: str | None
    version: str | None
    content_hash: str


def find_sources(root: Path) -> Iterator[Path]:
    """Every ingestible file under root (or root itself), in a stable order."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
            yield path


def read_source(path: Path, source: str, product: str | None = None) -> SourceDocument:
    """Decode one file; front matter (--- yaml ---) supplies product, title and version."""
    raw = path.read_bytes()
    if not raw.strip():
        raise UnreadableSource("file is empty")
    if len(raw) > MAX_SOURCE_BYTES:
        raise UnreadableSource(f"file is larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MiB")
    if b"\x00" in raw[:4096]:
        raise UnreadableSource("file looks binary")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableSource(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    meta, body = split_front_matter(text)
    kind = TEXT_SUFFIXES.get(path.suffix.lower(), "text")
    return SourceDocument(
        source=source,
        text=body,
        kind=kind,
        title=str(meta.get("title") or first_heading(body) or path.stem.replace("-", " ")),
        product=meta.get("product") or product,
        version=str(meta["version"]) if meta.get("version") is not None else None,
        content_hash=hashlib.sha256(raw).hexdigest(),
    )


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Separate a leading YAML front-matter block from the body."""
    if not text.startswith("---"):
        return {}, text
    end = text.find("\n---", 3)
    if end == -1:
        return {}, text
    try:
        meta = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError as exc:
        raise UnreadableSource(f"front matter is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise UnreadableSource("front matter must be a YAML mapping")
    return meta, text[end + 4 :].lstrip("\n")


def first_heading(markdown: str) -> str | None:
    for line in markdown.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None
