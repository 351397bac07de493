"""The OpenVINO batching engine on the tiny Gemma: batching, cancelling, the bounded queue,
adapters swapped under load, and the export's check against the reference.

The tiny model is exported (fp32, so it is the reference's exact twin) on first use, building
the export environment if this machine has none yet (a few minutes, once). Without
openvino-genai these tests skip and say so; in CI a failed export is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from service.engines.base import ChatMessage, Completion, SamplingParams, TextDelta
from service.engines.local import LocalEngine
from service.engines.openvino import OpenVINOEngine
from service.engines.openvino_lanes import lora_scale
from service.engines.openvino_prepare import OV_MANIFEST, config_for_transformers4
from service.errors import EngineBusy, ModelNotPrepared
from tests.conftest import serve_engine

pytestmark = pytest.mark.openvino
QUESTION: list[ChatMessage] = [
    {"role": "system", "content": "You are the support assistant of Halcyon Home. " * 8},
    {"role": "user", "content": "My router shows E5."},
]


@pytest.fixture(scope="session")
def tiny_openvino(tiny_model_dir: Path, tiny_adapters: dict[str, Path]) -> Path:
    """The tiny model's fp32 OpenVINO export (checked against the reference with an adapter)."""
    try:
        import openvino_genai  # noqa: F401
    except ImportError:
        pytest.skip("openvino-genai is not installed: pip install 'tunedesk[openvino]'")
    from service.engines.openvino_prepare import export_openvino

    try:
        return export_openvino(
            tiny_model_dir, weights="fp32", verify_adapter=tiny_adapters["alpha"]
        )
    except Exception as exc:
        if os.environ.get("CI"):
            raise  # CI can build the export environment: failing to is a failure there
        pytest.skip(f"the tiny model could not be exported for OpenVINO: {exc}")


@pytest.fixture(scope="module")  # about 1.4 GB: only while its module runs (engine_server)
def openvino_engine_server(
    tiny_model_dir: Path, tiny_openvino: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`tunedesk engine serve --engine openvino` on the tiny model: a batching server."""
    yield from serve_openvino(tiny_model_dir, tmp_path_factory)


def serve_openvino(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The OpenVINO engine server on the fp32 export (tiny_openvino must exist); its /v1 URL."""
    args = ["--engine", "openvino"]
    yield from serve_engine(model_dir, tmp_path_factory, args, engine__weights="fp32")


@pytest.fixture
async def engine(tiny_model_dir: Path, tiny_openvino: Path) -> AsyncIterator[OpenVINOEngine]:
    built = OpenVINOEngine(tiny_model_dir, weights="fp32", batch_size=4, max_queue=2)
    await built.start()
    yield built
    await built.aclose()


async def answer(
    engine: OpenVINOEngine | LocalEngine, tokens: int = 12, adapter: str | None = None
) -> tuple[str, Completion]:
    events = [e async for e in engine.stream(QUESTION, SamplingParams(max_tokens=tokens), adapter)]
    last = events[-1]
    assert isinstance(last, Completion)
    return "".join(e.text for e in events if isinstance(e, TextDelta)), last


async def test_concurrent_answers_are_batched_and_each_is_the_answer_alone(
    engine: OpenVINOEngine,
) -> None:
    alone, _ = await answer(engine)
    started = time.perf_counter()
    together = await asyncio.gather(*(answer(engine) for _ in range(6)))  # 4 batched, 2 queued
    assert [text for text, _ in together] == [alone] * 6
    first_tokens = sorted(c.ttft_s or 0 for _, c in together)
    # batched: the fourth answer's first token came before the first answer could have ended
    assert first_tokens[3] < time.perf_counter() - started


async def test_closing_the_stream_stops_generation(engine: OpenVINOEngine) -> None:
    stream = engine.stream(QUESTION, SamplingParams(max_tokens=2000))
    await anext(stream)
    started = time.perf_counter()
    await stream.aclose()  # what a closed SSE connection does
    assert time.perf_counter() - started < 5
    assert (await engine.health()).detail.startswith("0 in flight")
    text, completion = await answer(engine, tokens=4)  # the engine goes on serving
    assert text and completion.completion_tokens == 4


async def test_a_full_queue_is_refused_fast_with_retry_after(engine: OpenVINOEngine) -> None:
    params = SamplingParams(max_tokens=400, ignore_eos=True)
    running = [engine.stream(QUESTION, params) for _ in range(6)]  # 4 batched + 2 queued
    for stream in running:
        await anext(stream)
    started = time.perf_counter()
    with pytest.raises(EngineBusy) as refused:
        await anext(engine.stream(QUESTION, SamplingParams(max_tokens=4)))
    assert time.perf_counter() - started < 0.5
    assert refused.value.headers == {"Retry-After": "2"}
    for stream in running:
        await stream.aclose()
    _, completion = await answer(engine, tokens=4)
    assert completion.finish_reason == "length"  # the slots were freed


async def test_an_adapter_replaced_mid_answer_finishes_that_answer_with_the_old_one(
    engine: OpenVINOEngine, tiny_adapters: dict[str, Path]
) -> None:
    await engine.load_adapter("product", str(tiny_adapters["alpha"]))
    alpha, _ = await answer(engine, adapter="product")
    stream = engine.stream(QUESTION, SamplingParams(max_tokens=12), "product")
    first = await anext(stream)
    await engine.load_adapter("product", str(tiny_adapters["beta"]))  # publish a new version
    rest = [e async for e in stream]
    old = "".join(e.text for e in [first, *rest] if isinstance(e, TextDelta))
    beta, _ = await answer(engine, adapter="product")
    assert old == alpha and beta != alpha
    await engine.unload_adapter("product")  # rollback to the base model
    assert await engine.list_adapters() == []


async def test_mixed_adapters_at_once_match_the_reference(
    engine: OpenVINOEngine, tiny_model_dir: Path, tiny_adapters: dict[str, Path]
) -> None:
    reference = LocalEngine(tiny_model_dir, weights="fp32")
    await reference.start()
    for name, path in tiny_adapters.items():
        await engine.load_adapter(name, str(path))
        await reference.load_adapter(name, str(path))
    names = [None, "alpha", "beta"] * 2
    together = await asyncio.gather(*(answer(engine, adapter=n) for n in names))
    expected = [(await answer(reference, adapter=n))[0] for n in names]
    assert [text for text, _ in together] == expected
    await reference.aclose()
    for name in tiny_adapters:
        await engine.unload_adapter(name)


async def test_a_stop_string_or_the_end_of_turn_say_stop(engine: OpenVINOEngine) -> None:
    text, _ = await answer(engine, tokens=24)
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    params = SamplingParams(max_tokens=24, stop=(stop,))
    events = [e async for e in engine.stream(QUESTION, params)]
    last = events[-1]
    assert isinstance(last, Completion)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == text[: text.find(stop)]
    assert (last.finish_reason, last.stop_sequence) == ("stop", stop)


async def test_without_an_export_it_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ModelNotPrepared, match="model prepare --engine openvino"):
        await OpenVINOEngine(tmp_path / "nothing").start()


def test_the_export_recorded_its_agreement_with_the_reference(tiny_openvino: Path) -> None:
    manifest = json.loads((tiny_openvino / OV_MANIFEST).read_text())
    agreement = manifest["agreement"]
    assert agreement["base"]["exact"] == agreement["base"]["prompts"]  # fp32: identical
    assert agreement["adapter"]["exact"] == agreement["adapter"]["prompts"]


def test_peft_scale_and_the_4x_rope_config(tiny_adapters: dict[str, Path]) -> None:
    assert lora_scale(tiny_adapters["alpha"]) == 64 / 4  # lora_alpha / r of tests/tiny_model
    config = {
        "rope_parameters": {
            "full_attention": {"rope_theta": 1e6, "rope_type": "default"},
            "sliding_attention": {"rope_theta": 1e4, "rope_type": "default"},
        },
        "dtype": "float32",
    }
    converted = config_for_transformers4(config)
    assert (converted["rope_theta"], converted["rope_local_base_freq"]) == (1e6, 1e4)
    assert converted["rope_scaling"] is None and converted["torch_dtype"] == "float32"
