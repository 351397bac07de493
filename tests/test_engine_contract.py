"""One contract, every engine: the local CPU engine, the OpenVINO batching engine, and the vLLM
client against a real server.

The vLLM client talks to `tunedesk engine serve` (a CPU engine behind vLLM's OpenAI-compatible
routes) started as its own process on loopback, the same way it talks to `vllm serve` on a GPU:
once serving the transformers engine, once the OpenVINO engine (a batching server). The OpenVINO
cases skip, saying why, where openvino-genai is not installed; the tiny model's export is built
on first use (tests/test_openvino.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from service.engines.base import ChatMessage, Completion, Engine, SamplingParams, TextDelta
from service.engines.local import LocalEngine
from service.engines.openvino import OpenVINOEngine
from service.engines.vllm import VLLMEngine
from service.errors import AdapterNotFound, EngineUnavailable, InvalidAdapter
from tests.conftest import SERVED, free_port, serve_engine
from tests.test_openvino import serve_openvino, tiny_openvino  # noqa: F401  (a fixture)

QUESTION: list[ChatMessage] = [
    {"role": "system", "content": "You are the support assistant of Halcyon Home. " * 8},
    {"role": "user", "content": "My router shows E5."},
]


OPENVINO = pytest.mark.openvino
ENGINES = [
    "local",
    "vllm",
    pytest.param("openvino", marks=OPENVINO),
    pytest.param("vllm-openvino", marks=OPENVINO),
]
# the OpenVINO cases run the fp32 export: the exact twin of the fp32 reference
REFERENCE_WEIGHTS = {"openvino": "fp32", "vllm-openvino": "fp32"}


@pytest.fixture(scope="module", params=ENGINES)
def engine_kind(request: pytest.FixtureRequest) -> str:
    """Module-scoped, so that pytest runs every test on one engine before the next engine's."""
    return str(request.param)


@pytest.fixture(scope="module")
def contract_server(
    engine_kind: str,
    tiny_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[str | None]:
    """A vllm case's engine server, stopped before the next case's starts: two servers at once
    beside pytest would hold 2.5 GB of their own."""
    if engine_kind == "vllm":
        yield from serve_engine(tiny_model_dir, tmp_path_factory, [])
    elif engine_kind == "vllm-openvino":
        request.getfixturevalue("tiny_openvino")
        yield from serve_openvino(tiny_model_dir, tmp_path_factory)
    else:
        yield None


@pytest.fixture
async def engine(
    engine_kind: str,
    contract_server: str | None,
    tiny_model_dir: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Engine]:
    built: Engine
    if contract_server is not None:
        built = VLLMEngine(contract_server, SERVED, max_retries=0)
    elif engine_kind == "local":
        built = LocalEngine(tiny_model_dir)
    else:
        request.getfixturevalue("tiny_openvino")
        built = OpenVINOEngine(tiny_model_dir, weights="fp32", batch_size=4)
    await built.start()
    yield built
    for name in await built.list_adapters():
        await built.unload_adapter(name)
    await built.aclose()


async def collect(engine: Engine, max_tokens: int = 8, adapter: str | None = None) -> list[object]:
    params = SamplingParams(max_tokens=max_tokens)
    return [e async for e in engine.stream(QUESTION, params, adapter)]


def text_of(events: list[object]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_streams_text_then_usage_and_timing(engine: Engine) -> None:
    events = await collect(engine, max_tokens=8)
    last = events[-1]
    assert isinstance(last, Completion)
    assert all(isinstance(e, TextDelta) for e in events[:-1]) and text_of(events)
    assert last.completion_tokens == 8 and last.finish_reason == "length"
    assert last.prompt_tokens > 20
    assert last.ttft_s is not None and 0 < last.ttft_s < 30


async def test_greedy_output_is_the_same_on_every_engine(
    engine: Engine, engine_kind: str, tiny_model_dir: Path
) -> None:
    reference = LocalEngine(tiny_model_dir, weights=REFERENCE_WEIGHTS.get(engine_kind, "int8"))
    await reference.start()
    assert text_of(await collect(engine)) == text_of(await collect(reference))
    await reference.aclose()


async def test_a_stop_string_ends_the_answer_before_it(engine: Engine) -> None:
    free = await collect(engine, max_tokens=24)
    text = text_of(free)
    stop = text[len(text) // 2 : len(text) // 2 + 3]  # three characters from the middle
    params = SamplingParams(max_tokens=24, stop=(stop,))
    events: list[object] = [e async for e in engine.stream(QUESTION, params)]
    last, unstopped = events[-1], free[-1]
    assert isinstance(last, Completion) and isinstance(unstopped, Completion)
    assert text_of(events) == text[: text.find(stop)]  # the stop string itself is not sent
    assert (last.finish_reason, last.stop_sequence) == ("stop", stop)
    assert last.completion_tokens < unstopped.completion_tokens  # it stopped generating


async def test_adapters_load_switch_and_unload_at_run_time(
    engine: Engine, tiny_adapters: dict[str, Path]
) -> None:
    base = text_of(await collect(engine))
    await engine.load_adapter("alpha", str(tiny_adapters["alpha"]))
    assert await engine.list_adapters() == ["alpha"]
    alpha = text_of(await collect(engine, adapter="alpha"))
    assert alpha != base
    assert text_of(await collect(engine)) == base
    await engine.unload_adapter("alpha")
    assert await engine.list_adapters() == []
    with pytest.raises(AdapterNotFound):
        await collect(engine, adapter="alpha")


async def test_bad_adapters_are_refused(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(InvalidAdapter, match=r"adapter_config\.json"):
        await engine.load_adapter("broken", str(tmp_path))
    with pytest.raises(AdapterNotFound):
        await engine.unload_adapter("never-loaded")


async def test_health(engine: Engine) -> None:
    health = await engine.health()
    assert health.ok, health.detail


async def test_vllm_down_is_engine_unavailable() -> None:
    engine = VLLMEngine(f"http://127.0.0.1:{free_port()}/v1", SERVED, max_retries=1, timeout_s=5)
    assert not (await engine.health()).ok
    started = time.monotonic()
    with pytest.raises(EngineUnavailable, match="unreachable"):
        await collect(engine)
    assert time.monotonic() - started < 10
    await engine.aclose()
