"""Read source files into documents: text plus metadata (product, title, version, URL).

One file gives one document, except a `docs.jsonl` collection (the eval-set format), which gives
one document per line. Readers for each format live in `knowledge.formats`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from knowledge.formats import Parsed

SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".jsonl": "jsonl",
}
MAX_SOURCE_BYTES = 64 * 1024 * 1024


class UnreadableSource(Exception):
    """A file that cannot be ingested; the message says why."""


@dataclass(frozen=True)
class SourceDocument:
    """One document, decoded, with its metadata. `kind` is "markdown" or "text"."""

    source: str
    text: str
    kind: str
    title: str
    product: str | None
    version: str | None
    content_hash: str
    url: str | None = None
    doc_id: str | None = None

    @property
    def document_id(self) -> str:
        """The id the document is known by: its record id, else its source name."""
        return self.doc_id or self.source


def find_sources(root: Path) -> Iterator[Path]:
    """Every ingestible file under root (or root itself), walked recursively, in stable order."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in SUFFIXES and not _hidden(path, root):
            yield path


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def read_bytes(path: Path, max_bytes: int = MAX_SOURCE_BYTES) -> bytes:
    """The raw file, refused when empty or over the size limit."""
    size = path.stat().st_size
    if size > max_bytes:
        raise UnreadableSource(
            f"file is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit"
        )
    raw = path.read_bytes()
    if not raw.strip():
        raise UnreadableSource("file is empty")
    return raw


def decode_text(raw: bytes) -> str:
    """UTF-8 text, refusing binary data and other encodings with a reason."""
    if b"\x00" in raw[:4096]:
        raise UnreadableSource("file looks binary")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableSource(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def content_hash(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def read_sources(
    path: Path, source: str, product: str | None = None, max_bytes: int = MAX_SOURCE_BYTES
) -> Parsed:
    """Decode one file into its documents (several for a docs.jsonl collection)."""
    from knowledge.formats import READERS

    kind = SUFFIXES.get(path.suffix.lower(), "text")
    return READERS[kind](read_bytes(path, max_bytes), path, source, product)


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
