"""Ingestion time and peak memory for a folder or docs.jsonl, into an embedded vector store.

Defaults to the 9,336 sections of ../shared/data/evalsets/samsung-distractors (third-party data,
read in place). Keep the index with --index-dir to reuse it for bench/retrieval_latency.py.
Usage: python bench/retrieval_ingest.py [--docs PATH] [--index-dir DIR] [--store edge|local]
       [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from knowledge.embedding import Embedder
from knowledge.index import EMBEDDED_STORES, open_index
from knowledge.ingest import ingest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_DOCS = SHARED_DATA / "evalsets" / "samsung-distractors" / "docs.jsonl"


def main() -> None:
    args = parse_args()
    if not args.docs.exists():
        sys.exit(f"{args.docs} is absent: the shared eval data is not on this machine.")
    with tempfile.TemporaryDirectory(prefix="tunedesk-bench-") as scratch:
        figures = run(args.docs, args.index_dir or Path(scratch), args.store)
    print(json.dumps(figures, indent=2) if args.json else "\n".join(_lines(figures)))


def run(docs: Path, folder: Path, store: str) -> dict[str, object]:
    started = time.perf_counter()
    embedder = Embedder()
    embedder.embed(["load the model"])
    loaded = time.perf_counter()
    rss_loaded = peak_rss_mib()
    index = open_index("eval", embedder, store=store, path=folder)
    try:
        report = ingest(index, docs, progress=lambda d: tqdm(d, unit="doc", file=sys.stderr))
        chunks = index.count()
    finally:
        index.close()
    done = time.perf_counter()
    return {
        "docs": str(docs),
        "store": store,
        "summary": report.summary(),
        "chunks_in_collection": chunks,
        "ingest_seconds": round(done - loaded, 1),
        "model_load_seconds": round(loaded - started, 1),
        "peak_rss_mib": round(peak_rss_mib()),
        "rss_after_model_load_mib": round(rss_loaded),
        "machine": f"{platform.processor() or platform.machine()}, {_cores()} cores",
    }


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cores() -> int:
    import os

    return os.cpu_count() or 0


def _lines(figures: dict[str, object]) -> list[str]:
    return [f"{key}: {value}" for key, value in figures.items()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--index-dir", type=Path, default=None, help="Keep the index here.")
    parser.add_argument("--store", choices=sorted(EMBEDDED_STORES), default="edge")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    main()
