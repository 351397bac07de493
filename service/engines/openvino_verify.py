"""Greedy agreement between the OpenVINO engine and the reference engine on fixed prompts.

Used by `tunedesk model prepare --engine openvino` on its fresh export (base model, and with a
LoRA adapter when one is given) and by bench/engine.py. int8 weights are not bit-exact with the
fp32 reference, so this reports how far the two agree instead of demanding identity; an export
whose very first tokens disagree on most prompts is broken and refused.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from service.engines.artifacts import Report
from service.engines.base import ChatMessage, Engine, SamplingParams, TextDelta

SYSTEM = "You are the support assistant of Halcyon Home. Answer from the product manuals."
QUESTIONS = [
    "My router shows error E5. What should I do?",
    "How do I reset the thermostat to factory settings?",
    "The smart plug does not show up in the app after pairing.",
    "Can I use the camera outdoors in the rain?",
    "The doorbell battery drains in two days. Is that normal?",
    "How do I update the hub's firmware?",
]
VERIFY_TOKENS = 32


def fixed_prompts() -> list[list[ChatMessage]]:
    """The prompts both engines answer: one system message and one support question each."""
    return [
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in QUESTIONS
    ]


async def greedy_answers(
    engine: Engine,
    prompts: list[list[ChatMessage]],
    adapter: str | None = None,
    tokens: int = VERIFY_TOKENS,
) -> list[str]:
    """Each prompt's greedy answer, one after another."""
    params = SamplingParams(max_tokens=tokens)
    answers = []
    for prompt in prompts:
        events = [e async for e in engine.stream(prompt, params, adapter)]
        answers.append("".join(e.text for e in events if isinstance(e, TextDelta)))
    return answers


def agreement(reference: list[str], candidate: list[str], tokenizer: Any) -> dict[str, float]:
    """Exact matches, and the share of reference tokens before the first difference."""
    exact = sum(r == c for r, c in zip(reference, candidate, strict=True))
    shared, total, first = 0, 0, 0
    for ref, cand in zip(reference, candidate, strict=True):
        ref_ids = tokenizer(ref, add_special_tokens=False).input_ids
        cand_ids = tokenizer(cand, add_special_tokens=False).input_ids
        pairs = zip(ref_ids, cand_ids, strict=False)
        same = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
        prefix = min(len(ref_ids), len(cand_ids)) if same is None else same
        shared, total, first = shared + prefix, total + max(len(ref_ids), 1), first + (prefix > 0)
    count = max(len(reference), 1)
    return {
        "prompts": len(reference),
        "exact": exact,
        "exact_rate": round(exact / count, 3),
        "prefix_token_share": round(shared / max(total, 1), 3),
        "first_token_rate": round(first / count, 3),
    }


async def compare_engines(
    reference: Engine, candidate: Engine, tokenizer: Any, adapter: tuple[str, Path] | None
) -> dict[str, Any]:
    """Agreement on the fixed prompts, base model and (if given) with the adapter loaded."""
    prompts = fixed_prompts()
    base = agreement(
        await greedy_answers(reference, prompts),
        await greedy_answers(candidate, prompts),
        tokenizer,
    )
    result: dict[str, Any] = {"base": base}
    if adapter is not None:
        name, path = adapter
        for engine in (reference, candidate):
            await engine.load_adapter(name, str(path))
        result["adapter"] = {"name": path.name} | agreement(
            await greedy_answers(reference, prompts, name),
            await greedy_answers(candidate, prompts, name),
            tokenizer,
        )
    return result


def verify_export(
    model_dir: Path, ov_dir: Path, weights: str, adapter_dir: Path | None, report: Report
) -> dict[str, Any]:
    """Compare a fresh export with the fp32 reference engine; refuse a broken one."""
    with ThreadPoolExecutor(1) as pool:  # a loop of its own, even when called from inside one
        check = _verify(model_dir, ov_dir, weights, adapter_dir, report)
        return pool.submit(asyncio.run, check).result()


async def _verify(
    model_dir: Path, ov_dir: Path, weights: str, adapter_dir: Path | None, report: Report
) -> dict[str, Any]:
    from service.engines.local import LocalEngine
    from service.engines.openvino import OpenVINOEngine

    reference = LocalEngine(model_dir, weights="fp32", prefix_cache_size=0)
    candidate = OpenVINOEngine(model_dir, weights=weights, ov_dir=ov_dir, batch_size=4)
    await reference.start()
    await candidate.start()
    try:
        adapter = ("verify", adapter_dir) if adapter_dir is not None else None
        tokenizer = reference.runtime.tokenizer
        result = await compare_engines(reference, candidate, tokenizer, adapter)
    finally:
        await candidate.aclose()
        await reference.aclose()
    for part, figures in result.items():
        report(
            f"  {part}: {figures['exact']}/{figures['prompts']} answers identical, "
            f"{figures['prefix_token_share']:.0%} of tokens agree before the first difference"
        )
        if figures["first_token_rate"] < 0.5:
            raise RuntimeError(f"the export disagrees with the reference from the start: {result}")
    return result
