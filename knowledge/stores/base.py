"""What the knowledge base needs from a vector store, whichever engine holds the vectors.

A collection holds chunks with a dense vector (cosine) and a sparse lexical vector (IDF applied
by the store) each, plus a payload. The one query is hybrid: a dense and a sparse prefetch under
an optional product filter, fused inside the store (DBSF or RRF).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

DENSE = "dense"
SPARSE = "sparse"
KEYWORD_FIELDS = ("source", "product", "doc_id")
PointId = int | str | uuid.UUID
Fusion = Literal["dbsf", "rrf"]
PayloadRows = Iterator[tuple[PointId, dict[str, Any]]]  # point id, payload


@dataclass(frozen=True)
class SparseVector:
    """Term ids and weights of a lexical vector."""

    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class StoredPoint:
    """One chunk as written: id, both vectors and the payload."""

    id: str
    dense: list[float]
    sparse: SparseVector
    payload: dict[str, Any]


@dataclass(frozen=True)
class FoundPoint:
    """One chunk as a query returns it, with its fused score."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class HybridQuery:
    """Dense and sparse candidates (either may be absent), fused, within one product or all."""

    dense: list[float] | None
    sparse: SparseVector | None
    limit: int
    depth: int = 50  # candidates each prefetch hands to the fusion
    fusion: Fusion = "dbsf"
    sparse_weight: int = 1  # how many times the lexical list counts in the fusion
    product: str | None = None


class VectorStore(Protocol):
    """A place to keep and search chunk vectors: Qdrant (local mode or server) or Qdrant Edge."""

    def has_collection(self, name: str) -> bool: ...

    def create_collection(self, name: str, dimension: int) -> None: ...

    def count(self, name: str) -> int: ...

    def payloads(self, name: str, fields: Sequence[str]) -> PayloadRows:
        """Every point's id with the payload fields asked for."""
        ...

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None: ...

    def retrieve(self, name: str, ids: Sequence[PointId]) -> list[FoundPoint]:
        """The points with these ids that exist, with their payloads (score 0)."""
        ...

    def find(self, name: str, key: str, value: str, limit: int) -> list[FoundPoint]:
        """Up to limit points whose payload field key equals value (score 0)."""
        ...

    def delete_ids(self, name: str, ids: Sequence[PointId]) -> None: ...

    def delete_where(self, name: str, key: str, value: str) -> None:
        """Delete every point whose payload field key equals value."""
        ...

    def query(self, name: str, query: HybridQuery) -> list[FoundPoint]: ...

    def close(self) -> None: ...
