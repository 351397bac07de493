"""Structure-aware chunking: heading-aware sections, then whole blocks packed into chunks.

Markdown is cut at headings by langchain-text-splitters (the syntax-preserving splitter, which
keeps blank lines and code fences), and every chunk carries its heading path. Inside a section,
text is grouped into blocks (paragraphs, tables, numbered or bulleted lists, code) and blocks are
packed whole, so a table or a list of steps is never cut mid-way unless it alone is larger than
`max_block`; then a table is cut between rows (its header repeated) and a list between items.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from langchain_text_splitters import (
    ExperimentalMarkdownSyntaxTextSplitter,
    RecursiveCharacterTextSplitter,
)

from knowledge.documents import SourceDocument

CHUNK_NAMESPACE = uuid.UUID("6f1c2a7e-3b7d-4a55-9d0e-2f5b8f6c1d42")
HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3"), ("####", "h4")]
LIST_ITEM = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*+•])\s+")


@dataclass(frozen=True)
class Chunk:
    """A piece of a source document, small enough to embed and to quote in a prompt."""

    id: str
    source: str
    index: int
    text: str
    title: str
    heading_path: list[str]
    product: str | None
    version: str | None
    source_hash: str
    url: str | None = None
    doc_id: str | None = None

    @property
    def location(self) -> str:
        """Title and heading path, without repeating the title when the first heading is it."""
        path = self.heading_path
        if path and path[0].strip().lower() == self.title.strip().lower():
            path = path[1:]
        return " > ".join([self.title, *path])

    @property
    def embedding_text(self) -> str:
        """What gets embedded and indexed: where the text sits, then the text."""
        return self.location + "\n" + self.text


@dataclass(frozen=True)
class Block:
    kind: str  # "table", "list", "code" or "text"
    text: str


class Chunker:
    """Split by headings, then pack whole blocks (tables, step lists, paragraphs) into chunks."""

    def __init__(self, chunk_size: int = 1200, chunk_overlap: int = 150, max_block: int = 4000):
        self.chunk_size = chunk_size
        self.max_block = max(max_block, chunk_size)
        self._sizer = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size,
            chunk_overlap=min(chunk_overlap, chunk_size // 2),
            separators=["\n\n", "\n", ". ", " "],
        )

    def split(self, doc: SourceDocument) -> list[Chunk]:
        pieces = [
            (path, piece)
            for path, text in sections(doc)
            for piece in self.pack(blocks(text))
            if piece.strip()
        ]
        if not pieces and doc.text.strip():
            pieces = [([], doc.text.strip())]
        return [_chunk(doc, i, path, text) for i, (path, text) in enumerate(pieces)]

    def pack(self, items: list[Block]) -> list[str]:
        """Greedily fill chunks with whole blocks; cut only blocks that are too big alone."""
        chunks: list[str] = []
        current = ""
        for block in items:
            if current and len(current) + 2 + len(block.text) > self.chunk_size:
                chunks.append(current)
                current = ""
            if len(block.text) <= self.chunk_size or (
                block.kind != "text" and len(block.text) <= self.max_block
            ):
                current = f"{current}\n\n{block.text}" if current else block.text
                continue
            if current:
                chunks.append(current)
                current = ""
            chunks += self._cut(block)
        return [*chunks, current] if current else chunks

    def _cut(self, block: Block) -> list[str]:
        if block.kind == "table":
            lines = block.text.splitlines()
            head, rows = lines[:2], lines[2:]
            return _group(rows, self.chunk_size, prefix="\n".join(head))
        if block.kind == "list":
            return _group(_items(block.text), self.chunk_size)
        return self._sizer.split_text(block.text)


def sections(doc: SourceDocument) -> list[tuple[list[str], str]]:
    """(heading path, text) per section; Markdown by headings, anything else as one section."""
    if doc.kind != "markdown":
        return [([], doc.text)]
    splitter = ExperimentalMarkdownSyntaxTextSplitter(HEADERS, strip_headers=True)
    merged: list[tuple[list[str], str]] = []
    for part in splitter.split_text(doc.text):
        path = [part.metadata[key] for _, key in HEADERS if key in part.metadata]
        if merged and merged[-1][0] == path:  # code blocks come back as their own parts
            merged[-1] = (path, merged[-1][1] + "\n" + part.page_content)
        else:
            merged.append((path, part.page_content))
    return merged


def blocks(text: str) -> list[Block]:
    """Paragraph-level blocks; list items split by blank lines and a lead-in join their list."""
    found: list[Block] = []
    for raw in re.split(r"\n\s*\n", text.strip()):
        block = Block(_kind(raw), raw.strip("\n"))
        if not block.text.strip():
            continue
        previous = found[-1] if found else None
        if previous and _joins(previous, block):
            kind = block.kind if previous.kind == "text" else previous.kind
            found[-1] = Block(kind, previous.text + "\n\n" + block.text)
        else:
            found.append(block)
    return found


def _kind(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines and all(line.lstrip().startswith("|") for line in lines):
        return "table"
    if lines and lines[0].lstrip().startswith("```"):
        return "code"
    if lines and LIST_ITEM.match(lines[0]):
        return "list"
    return "text"


def _joins(previous: Block, block: Block) -> bool:
    if previous.kind == block.kind and block.kind in ("list", "table"):
        return True
    lead_in = previous.kind == "text" and previous.text.rstrip().endswith(":")
    return lead_in and block.kind in ("list", "table") and len(previous.text) < 300


def _items(text: str) -> list[str]:
    items: list[str] = []
    for line in text.splitlines():
        if LIST_ITEM.match(line) or not items:
            items.append(line)
        else:
            items[-1] += "\n" + line
    return [item for item in items if item.strip()]


def _group(parts: list[str], size: int, prefix: str = "") -> list[str]:
    groups: list[str] = []
    current = prefix
    for part in parts:
        if current != prefix and len(current) + 1 + len(part) > size:
            groups.append(current)
            current = prefix
        current = f"{current}\n{part}" if current else part
    if current != prefix:
        groups.append(current)
    return groups


def _chunk(doc: SourceDocument, index: int, path: list[str], text: str) -> Chunk:
    key = f"{doc.source}#{index}#{doc.content_hash}"
    return Chunk(
        id=str(uuid.uuid5(CHUNK_NAMESPACE, key)),
        source=doc.source,
        index=index,
        text=text.strip(),
        title=doc.title,
        heading_path=path,
        product=doc.product,
        version=doc.version,
        source_hash=doc.content_hash,
        url=doc.url,
        doc_id=doc.document_id,
    )
