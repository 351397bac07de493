"""The Qdrant collection: dense + sparse vectors per chunk, hybrid search with a product filter.

The same code runs against Qdrant's local mode (a directory on disk) and a Qdrant server (a URL).
One collection holds one tenant's knowledge base (`knowledge.collection` in the settings); the
product is a payload field with an index, so every search can keep to one product.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from knowledge.chunking import Chunk
from knowledge.embedding import Embedder
from knowledge.query import HistoryTurn, search_text
from knowledge.sparse import encode_document, encode_query

DENSE = "dense"
SPARSE = "sparse"
PointId = int | str | uuid.UUID


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


class KnowledgeBaseBusy(Exception):
    """Qdrant's local mode lets one process at a time open its folder."""


def open_client(path: Path | None = None, url: str | None = None) -> QdrantClient:
    """A Qdrant client: a server when url is set, otherwise local mode on disk at path."""
    if url:
        return QdrantClient(url=url)
    assert path is not None, "either a Qdrant URL or a local path is needed"
    path.mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" not in str(exc):
            raise
        raise KnowledgeBaseBusy(
            f"The knowledge base in {path} is open in another process (is `tunedesk serve` "
            "running?). Stop it first, or use a Qdrant server (TUNEDESK_KNOWLEDGE__QDRANT_URL)."
        ) from exc


@dataclass(frozen=True)
class SearchSettings:
    """How hybrid search fuses its candidates (measured choices: docs/retrieval.md)."""

    fusion: str = "dbsf"  # "dbsf" or "rrf"; "dense" or "sparse" alone, for comparison
    sparse_weight: int = 1  # how many times the lexical list counts in the fusion (1: plain)
    depth: int = 50  # candidates each of dense and sparse search hand to the fusion
    history_chars: int = 1200  # conversation history folded into the search text


@dataclass
class SourceState:
    """What the collection holds for one source: its content hash and its point ids."""

    content_hash: str | None
    point_ids: list[PointId] = field(default_factory=list)


class KnowledgeIndex:
    """One collection of chunks; ingestion writes it, the chat service searches it."""

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        embedder: Embedder,
        settings: SearchSettings | None = None,
    ) -> None:
        self.client = client
        self.collection = collection
        self.embedder = embedder
        self.settings = settings or SearchSettings()

    def ensure_collection(self) -> None:
        if self.client.collection_exists(self.collection):
            return
        self.client.create_collection(
            self.collection,
            vectors_config={
                DENSE: models.VectorParams(
                    size=self.embedder.dimension, distance=models.Distance.COSINE
                )
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        with warnings.catch_warnings():  # local mode ignores payload indexes; a server uses them
            warnings.filterwarnings("ignore", "Payload indexes have no effect")
            for field_name in ("source", "product", "doc_id"):
                self.client.create_payload_index(
                    self.collection, field_name, field_schema=models.PayloadSchemaType.KEYWORD
                )

    def count(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return self.client.count(self.collection, exact=True).count

    def source_states(self) -> dict[str, SourceState]:
        """Every indexed source with its hash and point ids, read in one pass."""
        states: dict[str, SourceState] = {}
        if not self.client.collection_exists(self.collection):
            return states
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection, limit=1024, offset=offset, with_payload=["source", "source_hash"]
            )
            for point in points:
                payload = point.payload or {}
                state = states.setdefault(str(payload["source"]), SourceState(None))
                state.content_hash = payload.get("source_hash")
                state.point_ids.append(point.id)
            if offset is None:
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
            self.client.upsert(self.collection, points=points, wait=True)
        fresh = {c.id for c in chunks}
        self.delete_points([i for i in stale if str(i) not in fresh])

    def delete_points(self, ids: Sequence[PointId]) -> None:
        if ids:
            selector = models.PointIdsList(points=list(ids))
            self.client.delete(self.collection, points_selector=selector, wait=True)

    def delete_source(self, source: str) -> None:
        self.client.delete(self.collection, points_selector=_match("source", source), wait=True)

    def search(
        self,
        query: str,
        product: str | None = None,
        limit: int = 4,
        history: Sequence[HistoryTurn] | None = None,
    ) -> list[SearchHit]:
        """Hybrid search for a question, read in the light of the conversation so far."""
        text = search_text(query, history, self.settings.history_chars)
        return self.search_text(text, product, limit)

    def search_text(self, text: str, product: str | None = None, limit: int = 4) -> list[SearchHit]:
        """Dense and sparse candidates, fused inside Qdrant's query API, within one product."""
        if not self.client.collection_exists(self.collection):
            return []
        prefetch = self._prefetch(text, product, max(self.settings.depth, limit))
        if not prefetch:
            return []
        result = self.client.query_points(
            self.collection,
            prefetch=prefetch,
            query=models.FusionQuery(
                fusion=models.Fusion.DBSF if self.settings.fusion == "dbsf" else models.Fusion.RRF
            ),
            limit=limit,
            with_payload=True,
        )
        return [_hit(p) for p in result.points]

    def _prefetch(self, text: str, product: str | None, depth: int) -> list[models.Prefetch]:
        flt = _match("product", product) if product else None
        prefetch: list[models.Prefetch] = []
        if self.settings.fusion != "sparse":
            dense = self.embedder.embed([text])[0]
            prefetch.append(models.Prefetch(query=dense, using=DENSE, limit=depth, filter=flt))
        indices, values = encode_query(text)
        if indices and self.settings.fusion != "dense":
            sparse = models.SparseVector(indices=indices, values=values)
            lexical = models.Prefetch(query=sparse, using=SPARSE, limit=depth, filter=flt)
            prefetch += [lexical] * max(1, self.settings.sparse_weight)
        return prefetch


def _condition(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _match(key: str, value: str) -> models.Filter:
    return models.Filter(must=[_condition(key, value)])


def _point(chunk: Chunk, dense: list[float]) -> models.PointStruct:
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
    vector: dict[str, Any] = {
        DENSE: dense,
        SPARSE: models.SparseVector(indices=indices, values=values),
    }
    return models.PointStruct(id=chunk.id, vector=vector, payload=payload)


def _hit(point: models.ScoredPoint) -> SearchHit:
    p = point.payload or {}
    return SearchHit(
        chunk_id=str(point.id),
        score=float(point.score),
        text=p.get("text", ""),
        title=p.get("title", ""),
        source=p.get("source", ""),
        heading_path=list(p.get("heading_path") or []),
        product=p.get("product"),
        doc_id=p.get("doc_id") or p.get("source", ""),
        url=p.get("url"),
        version=p.get("version"),
    )
