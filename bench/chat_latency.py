"""Time to first token and decode speed of the embedded default, measured through HTTP.

Starts the real service (prepared Gemma 3 270M on the local CPU engine, MiniLM, Qdrant local mode
with the sample knowledge base) on a loopback port, asks the sample questions one at a time over
SSE, and prints client-side figures. Usage: python -m bench.chat_latency [--questions 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench import bench_key
from knowledge.embedding import Embedder
from knowledge.index import open_index
from knowledge.ingest import ingest
from service.app import Overrides, create_app
from service.config import SAMPLE_KNOWLEDGE_DIR, Settings


def main() -> None:
    args = parse_args()
    questions = load_questions(args.questions)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            engine={"max_new_tokens": args.max_new_tokens, "weights": args.weights},  # type: ignore[arg-type]
        )
        embedder = Embedder()
        index_sample(settings, embedder)
        url, key, stop = serve(settings, embedder)
        try:
            ask(url, key, questions[0])  # warm-up, not counted
            results = [ask(url, key, q) for q in questions]
        finally:
            stop()
    report(results, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=20, help="How many sample questions.")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--weights", choices=["int8", "int8-head", "fp32"], default="int8")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON too.")
    return parser.parse_args()


def load_questions(limit: int) -> list[dict[str, Any]]:
    path = SAMPLE_KNOWLEDGE_DIR / "eval" / "questions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [q for q in rows if q["type"] == "in_scope"][: limit + 1]


def index_sample(settings: Settings, embedder: Embedder) -> None:
    knowledge = settings.knowledge
    index = open_index(
        knowledge.collection, embedder, store=knowledge.store, path=knowledge.qdrant_path
    )
    try:
        ingest(index, SAMPLE_KNOWLEDGE_DIR / "docs")
    finally:
        index.close()


def serve(settings: Settings, embedder: Embedder) -> tuple[str, str, Any]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(settings, Overrides(embedder=embedder))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.1)

    def stop() -> None:
        server.should_exit = True
        thread.join()

    return f"http://127.0.0.1:{port}", bench_key(app), stop


def ask(url: str, key: str, question: dict[str, Any]) -> dict[str, float]:
    body = {"message": question["question"], "product": question["product"]}
    started = time.perf_counter()
    first: float | None = None
    final: dict[str, Any] = {}
    with httpx.stream(
        "POST",
        f"{url}/v1/chat",
        json=body,
        timeout=300,
        headers={"Accept": "text/event-stream", "Authorization": f"Bearer {key}"},
    ) as response:
        response.raise_for_status()
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                if event == "token" and first is None:
                    first = time.perf_counter()
                elif event == "final":
                    final = json.loads(line[6:])
    ended = time.perf_counter()
    tokens = final["usage"]["completion_tokens"]
    first = first or ended
    return {
        "ttft_s": first - started,
        "total_s": ended - started,
        "prompt_tokens": final["usage"]["prompt_tokens"],
        "completion_tokens": tokens,
        "decode_tok_s": (tokens - 1) / (ended - first) if tokens > 1 and ended > first else 0.0,
    }


def report(results: list[dict[str, float]], args: argparse.Namespace) -> None:
    ttft = sorted(r["ttft_s"] for r in results)
    figures = {
        "questions": len(results),
        "weights": args.weights,
        "ttft_p50_s": statistics.median(ttft),
        "ttft_p95_s": ttft[min(len(ttft) - 1, round(0.95 * (len(ttft) - 1)))],
        "decode_tok_s_mean": statistics.mean(r["decode_tok_s"] for r in results),
        "prompt_tokens_mean": statistics.mean(r["prompt_tokens"] for r in results),
        "completion_tokens_mean": statistics.mean(r["completion_tokens"] for r in results),
        "total_s_mean": statistics.mean(r["total_s"] for r in results),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    print(
        f"embedded default ({args.weights} weights), {len(results)} sample questions, concurrency 1"
    )
    print(
        f"  time to first token   p50 {figures['ttft_p50_s']:.2f} s"
        f"   p95 {figures['ttft_p95_s']:.2f} s"
    )
    print(f"  decode                {figures['decode_tok_s_mean']:.1f} tokens/s")
    print(f"  prompt                {figures['prompt_tokens_mean']:.0f} tokens on average")
    print(
        f"  answer                {figures['completion_tokens_mean']:.0f} tokens, "
        f"{figures['total_s_mean']:.1f} s on average"
    )
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
