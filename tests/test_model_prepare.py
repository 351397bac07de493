"""The real conversion of the packaged Gemma 3 270M, and real generation from it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from service.engines.artifacts import MANIFEST, is_prepared, prepare_model
from service.engines.base import Completion, SamplingParams, TextDelta
from service.engines.local import LocalEngine


@pytest.mark.slow
@pytest.mark.bigmem  # the fp32 weights, the GGUF's parsed metadata and one tensor's copy: 2.6 GB
def test_prepare_converts_verifies_and_is_then_a_no_op(tmp_path: Path) -> None:
    target = tmp_path / "models" / "gemma-3-270m"
    lines: list[str] = []
    prepare_model(target, report=lines.append)
    assert is_prepared(target)
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest["base_model"] == "google/gemma-3-270m"
    assert manifest["verify_max_logit_diff"] <= 1e-3
    assert any(line.startswith("[5/5]") for line in lines)
    assert not (tmp_path / "models" / "gemma-3-270m.partial").exists()

    started = time.perf_counter()
    again: list[str] = []
    prepare_model(target, report=again.append)
    assert time.perf_counter() - started < 5 and "nothing to do" in again[0]

    events = asyncio.run(_generate(target))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    completion = events[-1]
    assert isinstance(completion, Completion) and completion.completion_tokens > 0
    assert text.strip(), "the real model produced no text"


async def _generate(model_dir: Path) -> list[TextDelta | Completion]:
    engine = LocalEngine(model_dir)
    await engine.start()
    try:
        messages = [{"role": "user", "content": "The router shows error E5. What should I check?"}]
        return [e async for e in engine.stream(messages, SamplingParams(max_tokens=16))]  # type: ignore[arg-type]
    finally:
        await engine.aclose()
