"""Prompt tokens per part and time to first token on an eval set, with the embedded default.

Indexes the set's docs.jsonl into a throw-away collection, builds each question's prompt with the
real prompt layer (hybrid search, template choice, budget; the set's own product filter), counts
tokens per part with the model's tokenizer, and streams the answer's first token from the local
CPU engine (prefix reuse on, as served).

    python -m bench.prompt_parts --set ../shared/data/evalsets/s10 [--questions 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from knowledge.catalog import load_products, load_system_prompt, load_templates
from knowledge.embedding import Embedder
from knowledge.index import KnowledgeIndex, open_client
from knowledge.ingest import ingest
from service.config import SAMPLE_KNOWLEDGE_DIR, Settings
from service.engines.base import SamplingParams, TextDelta
from service.engines.local import LocalEngine
from service.prompting.builder import BuiltPrompt, PromptBudget, PromptBuilder, token_counter
from service.prompting.selection import TemplateSelector

PARTS = ["rules", "troubleshooting", "examples", "sources", "history", "question", "total"]


def build_prompts(set_dir: Path, workdir: Path, count: int) -> list[BuiltPrompt]:
    settings = Settings()
    embedder = Embedder()
    client = open_client(workdir / "qdrant")
    index = KnowledgeIndex(client, "prompt-parts", embedder)
    ingest(index, set_dir / "docs.jsonl")
    system = load_system_prompt(SAMPLE_KNOWLEDGE_DIR)
    catalog = load_products(SAMPLE_KNOWLEDGE_DIR)
    selector = TemplateSelector(load_templates(SAMPLE_KNOWLEDGE_DIR, catalog), embedder)
    budget = PromptBudget(settings.chat.max_prompt_tokens, settings.chat.history_tokens)
    builder = PromptBuilder(
        system, count_tokens=token_counter(settings.model.directory), budget=budget
    )
    rows = [json.loads(line) for line in (set_dir / "questions.jsonl").read_text().splitlines()]
    prompts = []
    for row in rows[:count]:
        hits = index.search(row["question"], row.get("product"), settings.knowledge.top_k)
        template = selector.select(row["question"], row.get("product"))
        prompts.append(builder.build(row["question"], hits, template))
    client.close()
    return prompts


async def first_token_seconds(prompts: list[BuiltPrompt]) -> list[float]:
    engine = LocalEngine(Settings().model.directory)
    await engine.start()
    timings = []
    for i, prompt in enumerate([prompts[0], *prompts]):  # the first one only warms up
        started = time.perf_counter()
        stream = engine.stream(prompt.messages, SamplingParams(max_tokens=2))
        async for event in stream:
            if isinstance(event, TextDelta):
                if i:
                    timings.append(time.perf_counter() - started)
                break
        await stream.aclose()
    await engine.aclose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, required=True, help="An eval-set folder.")
    parser.add_argument("--questions", type=int, default=20)
    args = parser.parse_args()
    if not (args.set / "docs.jsonl").is_file():
        sys.exit(f"{args.set} has no docs.jsonl (is ../shared/data there?)")
    with tempfile.TemporaryDirectory() as tmp:
        prompts = build_prompts(args.set, Path(tmp), args.questions)
    ttft = sorted(asyncio.run(first_token_seconds(prompts)))
    print(f"{args.set.name}: {len(prompts)} questions, embedded default (int8, prefix reuse)")
    print("  prompt tokens per part (mean / max):")
    for part in PARTS:
        values = [p.token_counts.get(part, 0) for p in prompts]
        print(f"    {part:16} {statistics.mean(values):7.0f} {max(values):7d}")
    p95 = ttft[min(len(ttft) - 1, round(0.95 * (len(ttft) - 1)))]
    print(f"  time to first token: p50 {statistics.median(ttft):.2f} s, p95 {p95:.2f} s")


if __name__ == "__main__":
    main()
