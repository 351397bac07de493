"""Copy a kept Qdrant Edge index into Qdrant local mode, vectors and payloads as they are.

Embedding 10,000 chunks takes minutes on two cores; copying them lets bench/retrieval_latency.py
time both embedded stores on identical points. Reads DIR/edge/eval (bench/retrieval_ingest.py
--store edge --index-dir DIR), writes local mode at TARGET.
Usage: python bench/retrieval_copy.py --index-dir DIR --target TARGET
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import qdrant_edge as edge

from knowledge.index import open_store
from knowledge.stores.base import DENSE, SPARSE, SparseVector, StoredPoint

COLLECTION = "eval"


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    points = read_edge(args.index_dir / "edge" / COLLECTION)
    _, store = open_store("local", args.target)  # local mode: the store owns the client
    try:
        if not store.has_collection(COLLECTION):
            store.create_collection(COLLECTION, len(points[0].dense))
        for start in range(0, len(points), 512):
            store.upsert(COLLECTION, points[start : start + 512])
        copied = store.count(COLLECTION)
    finally:
        store.close()
    seconds = round(time.perf_counter() - started, 1)
    print(json.dumps({"points": copied, "seconds": seconds, "target": str(args.target)}))


def read_edge(folder: Path) -> list[StoredPoint]:
    shard = edge.EdgeShard.load(str(folder))
    points: list[StoredPoint] = []
    offset: Any = None
    try:
        while True:
            request = edge.ScrollRequest(
                offset=offset, limit=1024, with_payload=True, with_vector=True
            )
            records, offset = shard.scroll(request)
            points += [_stored(r) for r in records]
            if offset is None:
                return points
    finally:
        shard.close()


def _stored(record: Any) -> StoredPoint:
    vectors = record.vector
    sparse = vectors[SPARSE]
    return StoredPoint(
        str(record.id),
        list(vectors[DENSE]),
        SparseVector(list(sparse.indices), list(sparse.values)),
        dict(record.payload or {}),
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--target", type=Path, required=True)
    return parser.parse_args()


if __name__ == "__main__":
    main()
