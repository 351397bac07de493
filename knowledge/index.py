"""The Qdrant collection: dense + sparse vectors per chunk, hybrid search with a product filter.

The same code runs against Qdrant's local mode (a directory on disk) and a Qdrant server (a URL).
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from knowledge.chunking import Chunk
from knowledge.embedding import Embedder
from knowledge.sparse import encode_document, encode_query

DENSE = "dense"
SPARSE = "sparse"


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


class KnowledgeIndex:
    """One collection of chunks; ingestion writes it, the chat service searches it."""

    def __init__(self, client: QdrantClient, collection: str, embedder: Embedder) -> None:
        self.client = client
        self.collection = collection
        self.embedder = embedder

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
            for field in ("source", "product"):
                self.client.create_payload_index(
                    self.collection, field, field_schema=models.PayloadSchemaType.KEYWORD
                )

    def count(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return self.client.count(self.collection, exact=True).count

    def source_hash(self, source: str) -> str | None:
        """The content hash stored for a source, or None when it is not indexed."""
        points, _ = self.client.scroll(
            self.collection, scroll_filter=_match("source", source), limit=1, with_payload=True
        )
        return points[0].payload.get("source_hash") if points and points[0].payload else None

    def sources(self) -> set[str]:
        found: set[str] = set()
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection, limit=512, offset=offset, with_payload=["source"]
            )
            found.update(str(p.payload["source"]) for p in points if p.payload)
            if offset is None:
                return found

    def replace_source(self, source: str, chunks: Sequence[Chunk]) -> None:
        """Swap a source's chunks for new ones: new points first, then the stale ones go."""
        vectors = self.embedder.embed([c.embedding_text for c in chunks])
        points = [_point(c, v) for c, v in zip(chunks, vectors, strict=True)]
        if points:
            self.client.upsert(self.collection, points=points, wait=True)
        keep: list[int | str | uuid.UUID] = [c.id for c in chunks]
        stale = models.Filter(
            must=[_condition("source", source)],
            must_not=[models.HasIdCondition(has_id=keep)] if keep else [],
        )
        self.client.delete(self.collection, points_selector=stale, wait=True)

    def delete_source(self, source: str) -> None:
        self.client.delete(self.collection, points_selector=_match("source", source), wait=True)

    def search(self, query: str, product: str | None = None, limit: int = 4) -> list[SearchHit]:
        """Hybrid search: dense and sparse candidates fused by reciprocal rank."""
        if not self.client.collection_exists(self.collection):
            return []
        dense = self.embedder.embed([query])[0]
        indices, values = encode_query(query)
        flt = _match("product", product) if product else None
        depth = max(20, limit * 5)
        prefetch = [models.Prefetch(query=dense, using=DENSE, limit=depth, filter=flt)]
        if indices:
            sparse = models.SparseVector(indices=indices, values=values)
            prefetch.append(models.Prefetch(query=sparse, using=SPARSE, limit=depth, filter=flt))
        result = self.client.query_points(
            self.collection,
            prefetch=prefetch,
            query=models.FusionQuery(fusion=models.Fusion.RRF),
            limit=limit,
            with_payload=True,
        )
        return [_hit(p) for p in result.points]


def _condition(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _match(key: str, value: str) -> models.Filter:
    return models.Filter(must=[_condition(key, value)])


def _point(chunk: Chunk, dense: list[float]) -> models.PointStruct:
    indices, values = encode_document(chunk.embedding_text)
    payload: dict[str, Any] = {
        "source": chunk.source,
        "index": chunk.index,
        "text": chunk.text,
        "title": chunk.title,
        "heading_path": chunk.heading_path,
        "product": chunk.product,
        "version": chunk.version,
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
    )
