"""Query latency of `KnowledgeIndex.search` on a large index, the embedder on CPU.

Uses an index kept by bench/retrieval_ingest.py (--index-dir), asks the s10 questions several
times, and splits the time into embedding the query and the rest (Qdrant's hybrid query).
Usage: python bench/retrieval_latency.py --index-dir DIR [--rounds 4] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from knowledge.embedding import Embedder
from knowledge.evaluation import load_questions, percentile
from knowledge.index import KnowledgeIndex, SearchSettings, open_client

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
S10 = SHARED_DATA / "evalsets" / "s10"


def main() -> None:
    args = parse_args()
    if not S10.is_dir():
        sys.exit(f"{S10} is absent: the shared eval data is not on this machine.")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    questions = [q.question for q in load_questions(S10)] * args.rounds
    client = open_client(args.index_dir)
    try:
        index = KnowledgeIndex(client, "eval", Embedder(), SearchSettings(fusion=args.fusion))
        figures = {"chunks": index.count(), "queries": len(questions), "fusion": args.fusion}
        index.search("warm-up query")
        for product in (None, "galaxy-s10"):
            figures[f"product={product}"] = measure(index, questions, product)
    finally:
        client.close()
    print(json.dumps(figures, indent=2) if args.json else json.dumps(figures))


def measure(index: KnowledgeIndex, questions: list[str], product: str | None) -> dict[str, float]:
    total: list[float] = []
    embedding: list[float] = []
    for question in questions:
        started = time.perf_counter()
        index.embedder.embed([question])
        embedded = time.perf_counter()
        index.search(question, product, 10)
        total.append((time.perf_counter() - embedded) * 1000)
        embedding.append((embedded - started) * 1000)
    return {
        "search_p50_ms": round(statistics.median(total), 1),
        "search_p95_ms": round(percentile(total, 95), 1),
        "embed_only_p50_ms": round(statistics.median(embedding), 1),
        "embed_only_p95_ms": round(percentile(embedding, 95), 1),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--fusion", default="dbsf")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    main()
