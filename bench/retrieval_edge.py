"""The same hybrid query in Qdrant Edge (Qdrant's in-process Rust engine), for comparison.

Qdrant's local mode scores sparse vectors point by point in Python, which makes its hybrid
query grow with the collection (docs/retrieval.md). This copies an index kept by
bench/retrieval_ingest.py into a Qdrant Edge shard and times the same query: dense + sparse
(IDF) prefetches fused by DBSF, with and without the product filter, embedding included.
Needs `pip install qdrant-edge-py` (not a project dependency).
Usage: python bench/retrieval_edge.py --index-dir DIR [--product galaxy-s10] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from knowledge.embedding import Embedder
from knowledge.evaluation import load_questions, percentile
from knowledge.index import open_client
from knowledge.sparse import encode_query

S10 = Path(__file__).resolve().parents[2] / "shared" / "data" / "evalsets" / "s10"


def main() -> None:
    args = parse_args()
    try:
        import qdrant_edge as edge
    except ImportError:
        sys.exit("qdrant-edge-py is not installed: pip install qdrant-edge-py")
    if not S10.is_dir():
        sys.exit(f"{S10} is absent: the shared eval data is not on this machine.")
    import torch

    torch.set_num_threads(args.threads)
    points = read_points(args.index_dir)
    with tempfile.TemporaryDirectory(prefix="tunedesk-edge-") as folder:
        shard = build_shard(edge, Path(folder) / "shard", points)
        questions = [q.question for q in load_questions(S10)] * args.rounds
        embedder = Embedder()
        figures: dict[str, Any] = {"chunks": len(points), "queries": len(questions)}
        search(edge, shard, embedder, "warm-up query", None)
        for product in (None, args.product):
            figures[f"product={product}"] = measure(edge, shard, embedder, questions, product)
        shard.close()
    print(json.dumps(figures, indent=2) if args.json else json.dumps(figures))


def read_points(folder: Path) -> list[Any]:
    client = open_client(folder)
    points: list[Any] = []
    offset = None
    try:
        while True:
            batch, offset = client.scroll(
                "eval", limit=2048, offset=offset, with_payload=True, with_vectors=True
            )
            points += batch
            if offset is None:
                return points
    finally:
        client.close()


def build_shard(edge: Any, path: Path, points: list[Any]) -> Any:
    config = edge.EdgeConfig(
        vectors={"dense": edge.EdgeVectorParams(size=384, distance=edge.Distance.Cosine)},
        sparse_vectors={"sparse": edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
    )
    shard = edge.EdgeShard.create(str(path), config)
    for start in range(0, len(points), 512):
        batch = [_edge_point(edge, p) for p in points[start : start + 512]]
        shard.update(edge.UpdateOperation.upsert_points(batch))
    keyword = edge.PayloadSchemaType.Keyword
    shard.update(edge.UpdateOperation.create_field_index("product", keyword))
    shard.optimize()
    return shard


def _edge_point(edge: Any, point: Any) -> Any:
    sparse = point.vector["sparse"]
    vector = {
        "dense": point.vector["dense"],
        "sparse": edge.SparseVector(indices=sparse.indices, values=sparse.values),
    }
    return edge.Point(id=str(point.id), vector=vector, payload=point.payload)


def search(edge: Any, shard: Any, embedder: Embedder, text: str, product: str | None) -> Any:
    dense = embedder.embed([text])[0]
    indices, values = encode_query(text)
    flt = None
    if product:
        match = edge.FieldCondition(key="product", match=edge.MatchValue(product))
        flt = edge.Filter(must=[match])
    sparse = edge.SparseVector(indices=indices, values=values)
    prefetches = [
        edge.Prefetch(limit=50, query=edge.Query.Nearest(dense, using="dense"), filter=flt),
        edge.Prefetch(limit=50, query=edge.Query.Nearest(sparse, using="sparse"), filter=flt),
    ]
    request = edge.QueryRequest(
        limit=10, query=edge.Fusion.Dbsf(), prefetches=prefetches, with_payload=True
    )
    return shard.query(request)


def measure(
    edge: Any, shard: Any, embedder: Embedder, questions: list[str], product: str | None
) -> dict[str, float]:
    times: list[float] = []
    for question in questions:
        started = time.perf_counter()
        search(edge, shard, embedder, question, product)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "search_p50_ms": round(statistics.median(times), 1),
        "search_p95_ms": round(percentile(times, 95), 1),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--product", default="galaxy-s10")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    main()
