"""Engine benchmark: time to first token, prefill and decode speed at concurrency 1, 4 and 16.

Engines: `local` (the CPU engine in-process), `served` (the vLLM client against
`tunedesk engine serve` on loopback: the same HTTP path a vLLM server is reached by) and, with
--vllm-url, a real vLLM server. Also: the engine's decode speed against calling model.generate
directly, and time to first token with and without prefix-KV reuse.

    python bench/engine.py [--engines local,served] [--concurrency 1,4,16] [--tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.rag_prompts import rag_prompts
from service.config import Settings
from service.engines.base import ChatMessage, Completion, Engine, SamplingParams, TextDelta
from service.engines.local import LocalEngine
from service.engines.vllm import VLLMEngine


async def one_request(
    engine: Engine, prompt: list[ChatMessage], tokens: int, exact: bool = False
) -> dict[str, float]:
    started = time.perf_counter()
    first: float | None = None
    completion: Completion | None = None
    params = SamplingParams(max_tokens=tokens, ignore_eos=exact)
    async for event in engine.stream(prompt, params):
        if isinstance(event, TextDelta) and first is None:
            first = time.perf_counter()
        elif isinstance(event, Completion):
            completion = event
    ended = time.perf_counter()
    assert completion is not None and first is not None
    return {
        "ttft": first - started,
        "prefill_tok_s": completion.prompt_tokens / (first - started),
        "decode_tok_s": (completion.completion_tokens - 1) / max(ended - first, 1e-9),
        "tokens": completion.completion_tokens,
        "prompt_tokens": completion.prompt_tokens,
    }


async def at_concurrency(
    engine: Engine, prompts: list[list[ChatMessage]], concurrency: int, tokens: int
) -> dict[str, float]:
    started = time.perf_counter()
    batch = [prompts[i % len(prompts)] for i in range(concurrency)]
    results = await asyncio.gather(*(one_request(engine, p, tokens) for p in batch))
    wall = time.perf_counter() - started
    ttfts = sorted(r["ttft"] for r in results)
    return {
        "concurrency": concurrency,
        "ttft_p50": statistics.median(ttfts),
        "ttft_max": ttfts[-1],
        "prefill_tok_s": statistics.mean(r["prefill_tok_s"] for r in results),
        "decode_tok_s": statistics.mean(r["decode_tok_s"] for r in results),
        "throughput_tok_s": sum(r["tokens"] for r in results) / wall,
        "prompt_tokens": statistics.mean(r["prompt_tokens"] for r in results),
    }


def direct_generate(engine: LocalEngine, prompt: list[ChatMessage], tokens: int) -> float:
    """Decode tokens/s of model.generate on the same prompt and weights, no engine around it."""
    import torch

    class FirstToken:
        at: float | None = None
        seen_prompt = False

        def put(self, _: Any) -> None:
            if self.seen_prompt and self.at is None:
                self.at = time.perf_counter()
            self.seen_prompt = True

        def end(self) -> None:
            pass

    runtime = engine.runtime
    ids = torch.tensor([runtime.render(prompt).ids])
    streamer = FirstToken()
    with torch.inference_mode():
        out = runtime.model.generate(
            ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, streamer=streamer
        )
    ended = time.perf_counter()
    generated = out.shape[1] - ids.shape[1]
    assert streamer.at is not None
    return (generated - 1) / (ended - streamer.at)


async def overhead(engine: LocalEngine, prompt: list[ChatMessage], tokens: int) -> dict[str, float]:
    await one_request(engine, prompt, tokens)  # warm
    direct = statistics.median(direct_generate(engine, prompt, tokens) for _ in range(3))
    through: list[float] = []
    for _ in range(3):
        result = await one_request(engine, prompt, tokens, exact=True)  # like min_new_tokens
        assert result["tokens"] == tokens
        through.append(result["decode_tok_s"])
    engine_rate = statistics.median(through)
    return {"direct_tok_s": direct, "engine_tok_s": engine_rate, "ratio": engine_rate / direct}


async def prefix_reuse(model_dir: Path, prompts: list[list[ChatMessage]]) -> dict[str, float]:
    figures = {}
    for size in (0, 8):
        engine = LocalEngine(model_dir, prefix_cache_size=size)
        await engine.start()
        await one_request(engine, prompts[0], 1)  # warm-up (and fills the cache when on)
        ttfts = [(await one_request(engine, p, 2))["ttft"] for p in prompts]
        figures["with" if size else "without"] = statistics.median(ttfts)
        await engine.aclose()
    return figures


def start_served(model_dir: Path, port: int = 18011) -> tuple[str, subprocess.Popen[bytes]]:
    env = {"TUNEDESK_MODEL__PATH": str(model_dir), "TUNEDESK_ENGINE__MAX_QUEUE": "64"}
    import os

    cmd = [sys.executable, "-m", "service.cli", "engine", "serve", "--port", str(port)]
    process = subprocess.Popen(
        cmd, env=os.environ | env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return f"{url}/v1", process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("engine server did not start")


async def bench_engine(
    name: str, engine: Engine, prompts: list[list[ChatMessage]], levels: list[int], tokens: int
) -> None:
    await engine.start()
    await one_request(engine, prompts[0], 4)  # warm-up
    print(
        f"\n{name}: {tokens}-token answers to RAG prompts (system + template + 3 chunks + question)"
    )
    print("  conc  TTFT p50  TTFT max  prefill tok/s  decode tok/s  throughput tok/s  prompt")
    for level in levels:
        r = await at_concurrency(engine, prompts, level, tokens)
        print(
            f"  {level:>4}  {r['ttft_p50']:7.2f}s  {r['ttft_max']:7.2f}s  "
            f"{r['prefill_tok_s']:13.0f}  {r['decode_tok_s']:12.1f}  "
            f"{r['throughput_tok_s']:16.1f}  {r['prompt_tokens']:6.0f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="local,served")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--vllm-url", help="a real vLLM server's /v1 URL to benchmark as well")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    model_dir = Settings().model.directory
    with tempfile.TemporaryDirectory() as tmp:
        prompts = rag_prompts(Path(tmp), 16)
    engines = args.engines.split(",")
    if "local" in engines:
        local = LocalEngine(model_dir, max_queue=64)
        await bench_engine("local CPU engine (in-process)", local, prompts, levels, args.tokens)
        o = await overhead(local, prompts[1], args.tokens)
        print(
            f"\noverhead: model.generate {o['direct_tok_s']:.1f} tok/s, through the engine "
            f"{o['engine_tok_s']:.1f} tok/s: ratio {o['ratio']:.3f}"
        )
        p = await prefix_reuse(model_dir, prompts)
        print(f"prefix reuse: TTFT p50 {p['without']:.2f}s without, {p['with']:.2f}s with")
        await local.aclose()
    if "served" in engines:
        url, process = start_served(model_dir)
        try:
            client = VLLMEngine(url, model_dir.name, max_concurrency=64)
            await bench_engine(
                "vLLM client → tunedesk engine serve (HTTP, loopback)",
                client,
                prompts,
                levels,
                args.tokens,
            )
        finally:
            process.terminate()
    if args.vllm_url:
        client = VLLMEngine(args.vllm_url, model_dir.name, max_concurrency=256)
        await bench_engine(f"vLLM at {args.vllm_url}", client, prompts, levels, args.tokens)


if __name__ == "__main__":
    asyncio.run(main())
