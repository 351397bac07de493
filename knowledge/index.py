"""The knowledge collection: dense + sparse vectors per chunk, hybrid search with a product filter.

The vectors live in a `VectorStore` (knowledge/stores/): Qdrant Edge on disk (the embedded
default), Qdrant's local mode on disk, or a Qdrant server when a URL is configured, all with the
same code above the store. One collection holds one tenant's knowledge base
(`knowledge.collection` in the settings); the product is a payload field with an index, so every
search can keep to one product.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient

from knowledge.chunking import Chunk
from knowledge.embedding import Embedder
from knowledge.identifiers import demote_other_identifiers, identifiers
from knowledge.query import HistoryTurn, search_text
from knowledge.sparse import encode_document, encode_query
from knowledge.stores.base import (
    DENSE,
    SPARSE,
    FoundPoint,
    HybridQuery,
    PointId,
    SparseVector,
    StoredPoint,
    VectorStore,
)
from knowledge.stores.client import KnowledgeBaseBusy, QdrantClientStore, open_client

__all__ = [
    "DENSE",
    "SPARSE",
    "KnowledgeBaseBusy",
    "KnowledgeIndex",
    "PointId",
    "SearchHit",
    "SearchSettings",
    "SourceState",
    "open_client",
    "open_index",
    "open_store",
]


@dataclass(frozen=True)
class SearchHit:
    """A retrieved chunk with its fused score."""

    chunk_id: str
    score: float
    text: str
    title: str
    source: str
    heading_path: list[str]
    product: str | None
    doc_id: str = ""
    url: str | None = None
    version: str | None = None

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path) if self.heading_path else self.title


@dataclass(frozen=True)
class SearchSettings:
    """How hybrid search fuses its candidates (measured choices: docs/retrieval.md)."""

    fusion: str = "dbsf"  # "dbsf" or "rrf"; "dense" or "sparse" alone, for comparison
    sparse_weight: int = 1  # how many times the lexical list counts in the fusion (1: plain)
    depth: int = 50  # candidates each of dense and sparse search hand to the fusion
    history_chars: int = 1200  # conversation history folded into the search text
    identifier_candidates: int = 4  # extra candidates when the question names a code


@dataclass
class SourceState:
    """What the collection holds for one source: its content hash and its point ids."""

    content_hash: str | None
    point_ids: list[PointId] = field(default_factory=list)


class KnowledgeIndex:
    """One collection of chunks; ingestion writes it, the chat service searches it.

    `client` is the Qdrant client the service keeps its other collections in (few-shot
    examples); the chunks live in `store`, which defaults to that same client.
    """

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        embedder: Embedder,
        settings: SearchSettings | None = None,
        store: VectorStore | None = None,
    ) -> None:
        self.client = client
        self.collection = collection
        self.embedder = embedder
        self.settings = settings or SearchSettings()
        self.store: VectorStore = store or QdrantClientStore(client)

    def close(self) -> None:
        """Close the vector store and the Qdrant client (closing a client twice is harmless)."""
        self.store.close()
        self.client.close()

    def ensure_collection(self) -> None:
        if not self.store.has_collection(self.collection):
            self.store.create_collection(self.collection, self.embedder.dimension)

    def count(self) -> int:
        if not self.store.has_collection(self.collection):
            return 0
        return self.store.count(self.collection)

    def source_states(self) -> dict[str, SourceState]:
        """Every indexed source with its hash and point ids, read in one pass."""
        states: dict[str, SourceState] = {}
        if not self.store.has_collection(self.collection):
            return states
        for point_id, payload in self.store.payloads(self.collection, ["source", "source_hash"]):
            state = states.setdefault(str(payload["source"]), SourceState(None))
            state.content_hash = payload.get("source_hash")
            state.point_ids.append(point_id)
        return states

    def sources(self) -> set[str]:
        return set(self.source_states())

    def write(
        self, chunks_by_source: Mapping[str, Sequence[Chunk]], stale: Sequence[PointId] = ()
    ) -> None:
        """Write whole sources: all their new points in one upsert, then their old points go.

        A failure before the upsert leaves the old version in place; after it, both versions
        are briefly present. A source is never left with only part of its chunks.
        """
        chunks = [c for source_chunks in chunks_by_source.values() for c in source_chunks]
        if chunks:
            vectors = self.embedder.embed([c.embedding_text for c in chunks])
            points = [_point(c, v) for c, v in zip(chunks, vectors, strict=True)]
            self.store.upsert(self.collection, points)
        fresh = {c.id for c in chunks}
        self.delete_points([i for i in stale if str(i) not in fresh])

    def delete_points(self, ids: Sequence[PointId]) -> None:
        if ids:
            self.store.delete_ids(self.collection, ids)

    def delete_source(self, source: str) -> None:
        self.store.delete_where(self.collection, "source", source)

    def chunks(self, ids: Sequence[str]) -> dict[str, SearchHit]:
        """The chunks with these ids that are still indexed, by id (score 0)."""
        if not ids or not self.store.has_collection(self.collection):
            return {}
        return {p.id: _hit(p) for p in self.store.retrieve(self.collection, ids)}

    def source_chunks(self, source: str, limit: int = 1000) -> list[SearchHit]:
        """One source's chunks in document order (score 0)."""
        if not self.store.has_collection(self.collection):
            return []
        points = self.store.find(self.collection, "source", source, limit)
        return [_hit(p) for p in sorted(points, key=lambda p: int(p.payload.get("index", 0)))]

    def search(
        self,
        query: str,
        product: str | None = None,
        limit: int = 4,
        history: Sequence[HistoryTurn] | None = None,
    ) -> list[SearchHit]:
        """Hybrid search for a question, read in the light of the conversation so far.

        When the question names a code or model number, a few more candidates are fetched and
        those whose heading names another member of its family go last (knowledge/identifiers.py).
        """
        text = search_text(query, history, self.settings.history_chars)
        asked = identifiers(query)
        if not asked:
            return self.search_text(text, product, limit)
        hits = self.search_text(text, product, limit + self.settings.identifier_candidates)
        return demote_other_identifiers(asked, hits)[:limit]

    def search_text(self, text: str, product: str | None = None, limit: int = 4) -> list[SearchHit]:
        """Dense and sparse candidates, fused inside the vector store, within one product."""
        if not self.store.has_collection(self.collection):
            return []
        query = self._query(text, product, limit)
        if query.dense is None and query.sparse is None:
            return []
        return [_hit(p) for p in self.store.query(self.collection, query)]

    def _query(self, text: str, product: str | None, limit: int) -> HybridQuery:
        use = self.settings.fusion
        dense = self.embedder.embed([text])[0] if use != "sparse" else None
        indices, values = encode_query(text) if use != "dense" else ([], [])
        return HybridQuery(
            dense=dense,
            sparse=SparseVector(indices, values) if indices else None,
            limit=limit,
            depth=max(self.settings.depth, limit),
            fusion="dbsf" if use == "dbsf" else "rrf",
            sparse_weight=self.settings.sparse_weight,
            product=product,
        )


def _edge_store(client: QdrantClient, path: Path) -> VectorStore:
    from knowledge.stores.edge import EdgeStore

    return EdgeStore(path / "edge")


def _local_store(client: QdrantClient, path: Path) -> VectorStore:
    return QdrantClientStore(client)


EMBEDDED_STORES: dict[str, Callable[[QdrantClient, Path], VectorStore]] = {
    "edge": _edge_store,
    "local": _local_store,
}


def open_store(
    store: str = "edge", path: Path | None = None, url: str | None = None
) -> tuple[QdrantClient, VectorStore]:
    """The Qdrant client and the chunks' vector store: a server when url is set, else on disk.

    On disk, "edge" keeps chunks in Qdrant Edge shards under path/edge/, "local" in Qdrant
    local mode at path. The client (for the service's other collections) is local mode at path
    either way, and its lock keeps a second process out of the folder.
    """
    client = open_client(path, url)
    if url:
        return client, QdrantClientStore(client)
    assert path is not None
    try:
        return client, EMBEDDED_STORES[store](client, path)
    except BaseException:
        client.close()
        raise


def open_index(
    collection: str,
    embedder: Embedder,
    *,
    store: str = "edge",
    path: Path | None = None,
    url: str | None = None,
    settings: SearchSettings | None = None,
) -> KnowledgeIndex:
    """One collection of the knowledge base as configured (see open_store); close() it after."""
    client, vectors = open_store(store, path, url)
    return KnowledgeIndex(client, collection, embedder, settings, store=vectors)


def _point(chunk: Chunk, dense: list[float]) -> StoredPoint:
    indices, values = encode_document(chunk.embedding_text)
    payload: dict[str, Any] = {
        "source": chunk.source,
        "doc_id": chunk.doc_id or chunk.source,
        "index": chunk.index,
        "text": chunk.text,
        "title": chunk.title,
        "heading_path": chunk.heading_path,
        "product": chunk.product,
        "version": chunk.version,
        "url": chunk.url,
        "source_hash": chunk.source_hash,
    }
    return StoredPoint(chunk.id, dense, SparseVector(indices, values), payload)


def _hit(point: FoundPoint) -> SearchHit:
    p = point.payload
    return SearchHit(
        chunk_id=point.id,
        score=point.score,
        text=p.get("text", ""),
        title=p.get("title", ""),
        source=p.get("source", ""),
        heading_path=list(p.get("heading_path") or []),
        product=p.get("product"),
        doc_id=p.get("doc_id") or p.get("source", ""),
        url=p.get("url"),
        version=p.get("version"),
    )
