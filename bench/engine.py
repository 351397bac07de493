"""Engine benchmark: today's CPU engine and the OpenVINO batching engine side by side.

For each engine, in a process of its own (so its peak memory is its own): single-stream decode
speed, time to first token and throughput on RAG prompts at concurrency 1, 4 and 16, and peak
RSS; then the ratios openvino / local, and how often their greedy answers with the demo adapter
agree on a fixed prompt set. Load averages are printed with the figures: the machine is shared.

Engines: `local` (transformers in-process), `openvino` (OpenVINO GenAI continuous batching,
after `tunedesk model prepare --engine openvino`), `served` (the vLLM client against
`tunedesk engine serve` on loopback) and, with --vllm-url, a real vLLM server. --details adds
the local engine's overhead against model.generate and its prefix-reuse figures.

    python -m bench.engine [--engines local,openvino] [--concurrency 1,4,16] [--tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
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
from service.engines.openvino import OpenVINOEngine
from service.engines.openvino_verify import compare_engines
from service.engines.vllm import VLLMEngine

DEMO_ADAPTER = Path(__file__).resolve().parents[1] / "knowledge/sample/adapters/sample-sft-2"


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
) -> dict[str, Any]:
    await engine.start()
    await one_request(engine, prompts[0], 4)  # warm-up
    print(
        f"\n{name}: {tokens}-token answers to RAG prompts (system + template + 3 chunks + question)"
    )
    print("  conc  TTFT p50  TTFT max  prefill tok/s  decode tok/s  throughput tok/s  prompt")
    figures: dict[str, Any] = {"levels": {}}
    for level in levels:
        r = await at_concurrency(engine, prompts, level, tokens)
        figures["levels"][str(level)] = r
        print(
            f"  {level:>4}  {r['ttft_p50']:7.2f}s  {r['ttft_max']:7.2f}s  "
            f"{r['prefill_tok_s']:13.0f}  {r['decode_tok_s']:12.1f}  "
            f"{r['throughput_tok_s']:16.1f}  {r['prompt_tokens']:6.0f}"
        )
    singles = [await one_request(engine, prompts[1], tokens, exact=True) for _ in range(3)]
    figures["decode_tok_s"] = statistics.median(r["decode_tok_s"] for r in singles)
    print(f"  single-stream decode: {figures['decode_tok_s']:.1f} tok/s ({tokens} tokens)")
    return figures


def build(kind: str, model_dir: Path) -> Engine:
    if kind == "openvino":
        return OpenVINOEngine(model_dir, batch_size=16, max_queue=64)
    return LocalEngine(model_dir, max_queue=64)


async def measure(kind: str, levels: list[int], tokens: int) -> dict[str, Any]:
    """One engine's figures (run in a child process of its own)."""
    model_dir = Settings().model.directory
    with tempfile.TemporaryDirectory() as tmp:
        prompts = rag_prompts(Path(tmp), 16)
    load_before = os.getloadavg()
    engine = build(kind, model_dir)
    figures = await bench_engine(f"{kind} engine (in-process)", engine, prompts, levels, tokens)
    await engine.aclose()
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["load"] = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    return figures


def run_child(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    saved = Path(args.results) / f"{kind}.json" if args.results else None
    if saved is not None and saved.is_file():  # measured earlier in this run's folder
        return dict(json.loads(saved.read_text()))
    cmd = [sys.executable, "-m", "bench.engine", "--child", kind]
    cmd += ["--concurrency", args.concurrency, "--tokens", str(args.tokens)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    *printed, last = out.strip().splitlines()
    print("\n".join(printed))
    result: dict[str, Any] = json.loads(last)
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(result))
    return result


def print_side_by_side(old: dict[str, Any], new: dict[str, Any], levels: list[int]) -> None:
    print("\nside by side (ratio = openvino / local; TTFT ratio below 1 is better)")
    rows = [("single-stream decode tok/s", old["decode_tok_s"], new["decode_tok_s"])]
    for level in levels:
        a, b = old["levels"][str(level)], new["levels"][str(level)]
        rows.append((f"throughput tok/s @{level}", a["throughput_tok_s"], b["throughput_tok_s"]))
        rows.append((f"TTFT p50 s @{level}", a["ttft_p50"], b["ttft_p50"]))
    rows.append(("peak RSS MB", old["peak_rss_mb"], new["peak_rss_mb"]))
    print(f"  {'figure':<28} {'local':>10} {'openvino':>10} {'ratio':>8}")
    for label, a, b in rows:
        print(f"  {label:<28} {a:10.2f} {b:10.2f} {b / a:8.2f}")
    print(
        f"  load averages (1/5/15 min, before and after): local {old['load']}, "
        f"openvino {new['load']}"
    )


async def adapter_agreement(model_dir: Path) -> None:
    """Greedy answers of both engines with the demo adapter, on the fixed prompt set."""
    if not DEMO_ADAPTER.is_dir():
        return
    local, openvino = LocalEngine(model_dir), OpenVINOEngine(model_dir, batch_size=4)
    await local.start()
    await openvino.start()
    pair = ("demo", DEMO_ADAPTER)
    result = await compare_engines(local, openvino, local.runtime.tokenizer, pair)
    await openvino.aclose()
    await local.aclose()
    for part, f in result.items():
        print(
            f"  greedy agreement with today's engine, {part}: {f['exact']}/{f['prompts']} "
            f"identical, {f['prefix_token_share']:.0%} of tokens before the first difference"
        )


async def details(model_dir: Path, prompts: list[list[ChatMessage]], tokens: int) -> None:
    local = LocalEngine(model_dir, max_queue=64)
    await local.start()
    o = await overhead(local, prompts[1], tokens)
    print(
        f"\noverhead: model.generate {o['direct_tok_s']:.1f} tok/s, through the engine "
        f"{o['engine_tok_s']:.1f} tok/s: ratio {o['ratio']:.3f}"
    )
    p = await prefix_reuse(model_dir, prompts)
    print(f"prefix reuse: TTFT p50 {p['without']:.2f}s without, {p['with']:.2f}s with")
    await local.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="local,openvino")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--vllm-url", help="a real vLLM server's /v1 URL to benchmark as well")
    parser.add_argument("--details", action="store_true", help="local overhead, prefix reuse")
    parser.add_argument("--results", help="folder keeping each engine's figures, reused if there")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    if args.child:
        print(json.dumps(await measure(args.child, levels, args.tokens)))
        return
    model_dir = Settings().model.directory
    engines = args.engines.split(",")
    measured = {kind: run_child(kind, args) for kind in engines if kind in ("local", "openvino")}
    if len(measured) == 2:
        print_side_by_side(measured["local"], measured["openvino"], levels)
        await adapter_agreement(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        prompts = rag_prompts(Path(tmp), 16)
    if args.details:
        await details(model_dir, prompts, args.tokens)
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
