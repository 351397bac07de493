"""Query latency of `KnowledgeIndex.search` on a large index, the embedder on CPU, per store.

Uses an index kept by bench/retrieval_ingest.py (--index-dir, --store), asks the s10 questions
several times with and without the product filter, and splits each query's time:
embedding the question (MiniLM), its sparse vector (stemming), and the store's hybrid query.
`search` is the whole call with the query-vector cache off (every question new); `search_warm`
is the same call for a question the cache has seen (the chat service embeds a turn's question
several times). Nearest-rank percentiles.
Usage: python bench/retrieval_latency.py --index-dir DIR [--store edge|local] [--rounds 4]
       [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from knowledge.embedding import Embedder, VectorCache
from knowledge.evaluation import load_questions, percentile
from knowledge.index import EMBEDDED_STORES, KnowledgeIndex, SearchSettings, open_index
from knowledge.sparse import encode_query
from knowledge.stores.base import HybridQuery, SparseVector

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
S10 = SHARED_DATA / "evalsets" / "s10"
LIMIT = 10


def main() -> None:
    args = parse_args()
    if not S10.is_dir():
        sys.exit(f"{S10} is absent: the shared eval data is not on this machine.")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    questions = [q.question for q in load_questions(S10)] * args.rounds
    embedder = Embedder(cache_size=0)
    settings = SearchSettings(fusion=args.fusion)
    index = open_index("eval", embedder, store=args.store, path=args.index_dir, settings=settings)
    try:
        figures: dict[str, object] = {
            "store": args.store,
            "chunks": index.count(),
            "queries": len(questions),
            "fusion": args.fusion,
            "machine": f"{platform.processor() or platform.machine()}, threads {args.threads}",
        }
        index.search("warm-up query")
        for product in (None, args.product):
            figures[f"product={product}"] = measure(index, questions, product)
    finally:
        index.close()
    print(json.dumps(figures, indent=2) if args.json else json.dumps(figures))


def measure(index: KnowledgeIndex, questions: list[str], product: str | None) -> dict[str, float]:
    index.embedder.cache = VectorCache(0)
    parts: dict[str, list[float]] = {}
    for question in questions:
        for name, ms in cold_parts(index, question, product).items():
            parts.setdefault(name, []).append(ms)
    index.embedder.cache = VectorCache(len(questions))
    index.embedder.embed(questions)  # a batch over 16 bypasses the cache, so fill it by hand
    for question in questions:
        index.embedder.embed([question])
    parts["search_warm"] = [_search_ms(index, question, product) for question in questions]
    return {f"{name}_{stat}_ms": value for name, ms in parts.items() for stat, value in _stats(ms)}


def cold_parts(index: KnowledgeIndex, question: str, product: str | None) -> dict[str, float]:
    """One new question: each part on its own, then the whole search."""
    started = time.perf_counter()
    dense = index.embedder.embed([question])[0]
    embedded = time.perf_counter()
    indices, values = encode_query(question)
    encoded = time.perf_counter()
    index.store.query(
        index.collection, HybridQuery(dense, SparseVector(indices, values), LIMIT, product=product)
    )
    queried = time.perf_counter()
    return {
        "embed": (embedded - started) * 1000,
        "sparse": (encoded - embedded) * 1000,
        "store": (queried - encoded) * 1000,
        "search": _search_ms(index, question, product),
    }


def _search_ms(index: KnowledgeIndex, question: str, product: str | None) -> float:
    started = time.perf_counter()
    index.search(question, product, LIMIT)
    return (time.perf_counter() - started) * 1000


def _stats(ms: list[float]) -> list[tuple[str, float]]:
    return [("p50", round(statistics.median(ms), 1)), ("p95", round(percentile(ms, 95), 1))]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--store", choices=sorted(EMBEDDED_STORES), default="edge")
    parser.add_argument("--product", default="galaxy-s10")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--fusion", default="dbsf")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    main()
