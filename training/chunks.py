"""Where the text of a stored source comes from when the prompt has to be rebuilt.

The store keeps each answer's chunk ids, not the chunk texts. Two lookups find them: the live
knowledge base (Qdrant, by point id) and a documents folder chunked in memory with the same
chunker the ingestion uses (no Qdrant, no embedder: tests and the sample transcripts). Chunk ids
change when a document changes, so both can also find a chunk by its source and heading; a
prompt rebuilt that way is marked approximate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from knowledge.chunking import Chunk, Chunker
from knowledge.index import SearchHit


class ChunkLookup(Protocol):
    """Finds the chunks an answer was given, by id or, failing that, by source and heading."""

    def by_ids(self, chunk_ids: Sequence[str]) -> dict[str, SearchHit]: ...

    def by_location(self, source: str, heading: str) -> SearchHit | None: ...


class DocsChunks:
    """A documents folder chunked in memory, exactly as `tunedesk ingest` would chunk it."""

    def __init__(self, root: Path, chunker: Chunker | None = None) -> None:
        from knowledge.documents import MAX_SOURCE_BYTES
        from knowledge.ingest import IngestReport, read_documents

        report = IngestReport()
        documents = read_documents(root, None, MAX_SOURCE_BYTES, report)
        if report.failed:
            problems = "; ".join(f"{s}: {r}" for s, r in report.failed)
            raise ValueError(f"cannot read documents under {root}: {problems}")
        chunker = chunker or Chunker()
        hits = [_chunk_hit(c) for d in documents for c in chunker.split(d)]
        self._by_id = {h.chunk_id: h for h in hits}
        self._by_location: dict[tuple[str, str], SearchHit] = {}
        for hit in hits:  # the first chunk of a section stands for the section
            self._by_location.setdefault((hit.source, hit.heading), hit)

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> list[SearchHit]:
        return list(self._by_id.values())

    def by_ids(self, chunk_ids: Sequence[str]) -> dict[str, SearchHit]:
        return {i: self._by_id[i] for i in chunk_ids if i in self._by_id}

    def by_location(self, source: str, heading: str) -> SearchHit | None:
        return self._by_location.get((source, heading))


class IndexChunks:
    """Chunks read back from the knowledge base the service searches, in whichever store."""

    def __init__(self, index: Any) -> None:
        self._index = index  # knowledge.index.KnowledgeIndex

    def by_ids(self, chunk_ids: Sequence[str]) -> dict[str, SearchHit]:
        found: dict[str, SearchHit] = self._index.chunks(list(chunk_ids))
        return found

    def by_location(self, source: str, heading: str) -> SearchHit | None:
        hits: list[SearchHit] = self._index.source_chunks(source)
        return next((h for h in hits if h.heading == heading), None)


def _chunk_hit(chunk: Chunk) -> SearchHit:
    return SearchHit(
        chunk_id=chunk.id,
        score=0.0,
        text=chunk.text,
        title=chunk.title,
        source=chunk.source,
        heading_path=list(chunk.heading_path),
        product=chunk.product,
        doc_id=chunk.doc_id or chunk.source,
        url=chunk.url,
        version=chunk.version,
    )
