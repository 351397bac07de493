"""Few-shot examples: the best-rated past answers to the most similar past questions.

An answer rated good (or 4-5), or an agent's corrected answer, becomes an example keyed by the
customer's question. At prompt time the most similar examples for the same product are shown to
the model as worked answers. Examples live in their own Qdrant collection beside the knowledge.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from qdrant_client import QdrantClient, models

from service.prompting.selection import TextEmbedder
from service.store.models import DEFAULT_TENANT_ID

EXAMPLE_NAMESPACE = uuid.UUID("3c9e1f0a-8d2b-4f6e-9a71-5b0c2d4e6f81")


@dataclass(frozen=True)
class Example:
    """A past question and the answer worth imitating."""

    id: str
    question: str
    answer: str


class ExampleStore:
    """Rated answers, searchable by the meaning of their question and filtered by product."""

    def __init__(
        self, client: QdrantClient, collection: str, embedder: TextEmbedder, dimension: int
    ) -> None:
        self._client = client
        self._collection = collection
        self._embedder = embedder
        self._dimension = dimension

    def _ensure(self) -> None:
        if not self._client.collection_exists(self._collection):
            params = models.VectorParams(size=self._dimension, distance=models.Distance.COSINE)
            self._client.create_collection(self._collection, vectors_config=params)

    def add(
        self,
        message_id: str,
        question: str,
        answer: str,
        product: str | None,
        tenant_id: str = DEFAULT_TENANT_ID,
    ) -> str:
        """Store (or replace) the example for one rated answer; returns its id."""
        self._ensure()
        example_id = str(uuid.uuid5(EXAMPLE_NAMESPACE, message_id))
        vector = self._embedder.embed([question])[0]
        payload = {
            "message_id": message_id,
            "question": question,
            "answer": answer,
            "product": product,
            "tenant": tenant_id,
        }
        point = models.PointStruct(id=example_id, vector=vector, payload=payload)
        self._client.upsert(self._collection, points=[point], wait=True)
        return example_id

    def remove(self, message_id: str) -> None:
        if self._client.collection_exists(self._collection):
            example_id = str(uuid.uuid5(EXAMPLE_NAMESPACE, message_id))
            selector = models.PointIdsList(points=[example_id])
            self._client.delete(self._collection, points_selector=selector, wait=True)

    def similar(
        self,
        question: str,
        product: str | None,
        limit: int,
        min_similarity: float,
        tenant_id: str = DEFAULT_TENANT_ID,
    ) -> list[Example]:
        """The tenant's examples most like the question (same product when one is known)."""
        if limit <= 0 or not self._client.collection_exists(self._collection):
            return []
        conditions: list[models.Condition] = [_equals("tenant", tenant_id)]
        if product is not None:
            conditions.append(_equals("product", product))
        flt = models.Filter(must=conditions)
        result = self._client.query_points(
            self._collection,
            query=self._embedder.embed([question])[0],
            query_filter=flt,
            limit=limit,
            score_threshold=min_similarity,
            with_payload=True,
        )
        return [_example(p) for p in result.points]


def _equals(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _example(point: models.ScoredPoint) -> Example:
    payload = point.payload or {}
    return Example(str(point.id), str(payload.get("question", "")), str(payload.get("answer", "")))
