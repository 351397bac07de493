"""The vector store behind qdrant-client: a Qdrant server (url=) or Qdrant's local mode (path=).

Local mode is pure Python: it scores every sparse vector and evaluates the payload filter point
by point, so its hybrid query grows with the collection (docs/retrieval.md). A server runs
Qdrant's own engine on the same calls.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from knowledge.stores.base import (
    DENSE,
    KEYWORD_FIELDS,
    SPARSE,
    FoundPoint,
    HybridQuery,
    PayloadRows,
    PointId,
    StoredPoint,
)


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


class QdrantClientStore:
    """Collections kept through a QdrantClient (the client is shared, not owned)."""

    def __init__(self, client: QdrantClient) -> None:
        self.client = client

    def has_collection(self, name: str) -> bool:
        return self.client.collection_exists(name)

    def create_collection(self, name: str, dimension: int) -> None:
        self.client.create_collection(
            name,
            vectors_config={
                DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        with warnings.catch_warnings():  # local mode ignores payload indexes; a server uses them
            warnings.filterwarnings("ignore", "Payload indexes have no effect")
            for field_name in KEYWORD_FIELDS:
                self.client.create_payload_index(
                    name, field_name, field_schema=models.PayloadSchemaType.KEYWORD
                )

    def count(self, name: str) -> int:
        return self.client.count(name, exact=True).count

    def payloads(self, name: str, fields: Sequence[str]) -> PayloadRows:
        offset = None
        while True:
            points, offset = self.client.scroll(
                name, limit=1024, offset=offset, with_payload=list(fields)
            )
            yield from ((point.id, point.payload or {}) for point in points)
            if offset is None:
                return

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        self.client.upsert(name, points=[_point(p) for p in points], wait=True)

    def retrieve(self, name: str, ids: Sequence[PointId]) -> list[FoundPoint]:
        points = self.client.retrieve(name, ids=list(ids), with_payload=True)
        return [FoundPoint(str(p.id), 0.0, p.payload or {}) for p in points]

    def find(self, name: str, key: str, value: str, limit: int) -> list[FoundPoint]:
        points, _ = self.client.scroll(
            name, scroll_filter=_match(key, value), limit=limit, with_payload=True
        )
        return [FoundPoint(str(p.id), 0.0, p.payload or {}) for p in points]

    def delete_ids(self, name: str, ids: Sequence[PointId]) -> None:
        selector = models.PointIdsList(points=list(ids))
        self.client.delete(name, points_selector=selector, wait=True)

    def delete_where(self, name: str, key: str, value: str) -> None:
        self.client.delete(name, points_selector=_match(key, value), wait=True)

    def query(self, name: str, query: HybridQuery) -> list[FoundPoint]:
        flt = _match("product", query.product) if query.product else None
        prefetch: list[models.Prefetch] = []
        if query.dense is not None:
            prefetch.append(
                models.Prefetch(query=query.dense, using=DENSE, limit=query.depth, filter=flt)
            )
        if query.sparse is not None:
            sparse = models.SparseVector(indices=query.sparse.indices, values=query.sparse.values)
            lexical = models.Prefetch(query=sparse, using=SPARSE, limit=query.depth, filter=flt)
            prefetch += [lexical] * max(1, query.sparse_weight)
        fusion = models.Fusion.DBSF if query.fusion == "dbsf" else models.Fusion.RRF
        result = self.client.query_points(
            name,
            prefetch=prefetch,
            query=models.FusionQuery(fusion=fusion),
            limit=query.limit,
            with_payload=True,
        )
        return [FoundPoint(str(p.id), float(p.score), p.payload or {}) for p in result.points]

    def close(self) -> None:
        self.client.close()


def _match(key: str, value: str) -> models.Filter:
    condition = models.FieldCondition(key=key, match=models.MatchValue(value=value))
    return models.Filter(must=[condition])


def _point(point: StoredPoint) -> models.PointStruct:
    sparse = models.SparseVector(indices=point.sparse.indices, values=point.sparse.values)
    vector: dict[str, Any] = {DENSE: point.dense, SPARSE: sparse}
    return models.PointStruct(id=point.id, vector=vector, payload=point.payload)
