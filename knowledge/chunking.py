"""Heading-aware chunking with langchain-text-splitters; each chunk keeps its heading path."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from knowledge.documents import SourceDocument

CHUNK_NAMESPACE = uuid.UUID("6f1c2a7e-3b7d-4a55-9d0e-2f5b8f6c1d42")
HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]


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

    @property
    def embedding_text(self) -> str:
        """What gets embedded: where the text sits, then the text."""
        return " > ".join([self.title, *self.heading_path[1:]]) + "\n" + self.text


class Chunker:
    """Split Markdown by headings, then long sections by paragraphs, keeping lists whole."""

    def __init__(self, chunk_size: int = 1200, chunk_overlap: int = 150) -> None:
        self._headers = MarkdownHeaderTextSplitter(HEADERS, strip_headers=True)
        self._sizer = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            separators=["\n\n", "\n#", "\n", ". ", " "],
        )

    def split(self, doc: SourceDocument) -> list[Chunk]:
        sections = self._headers.split_text(doc.text) if doc.kind == "markdown" else []
        pieces: list[tuple[list[str], str]]
        if not sections:
            pieces = [([], p) for p in self._sizer.split_text(doc.text)]
        else:
            pieces = []
            for section in sections:
                path = [section.metadata[k] for _, k in HEADERS if k in section.metadata]
                pieces += [(path, p) for p in self._sizer.split_text(section.page_content)]
        return [self._chunk(doc, i, path, text) for i, (path, text) in enumerate(pieces)]

    @staticmethod
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
        )
