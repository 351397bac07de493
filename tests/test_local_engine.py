"""The embedded CPU engine on a tiny Gemma: streaming, the bounded queue, cancellation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from service.engines.base import ChatMessage, Completion, SamplingParams, TextDelta
from service.engines.local import LocalEngine
from service.errors import EngineBusy, ModelNotPrepared

MESSAGES: list[ChatMessage] = [{"role": "user", "content": "My router shows E5."}]


@pytest.fixture
async def engine(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    engine = LocalEngine(tiny_model_dir, max_concurrency=1, max_queue=0)
    await engine.start()
    yield engine
    await engine.aclose()


async def test_stream_yields_text_then_one_completion(engine: LocalEngine) -> None:
    events = [e async for e in engine.stream(MESSAGES, SamplingParams(max_tokens=8))]
    *deltas, last = events
    assert deltas and all(isinstance(d, TextDelta) for d in deltas)
    assert isinstance(last, Completion)
    assert last.completion_tokens == 8 and last.finish_reason == "length"
    assert last.prompt_tokens == len(engine.render(MESSAGES))
    assert last.ttft_s is not None and last.ttft_s > 0


async def test_a_full_queue_is_refused_with_retry_after(engine: LocalEngine) -> None:
    running = engine.stream(MESSAGES, SamplingParams(max_tokens=400))
    await anext(running)  # the only slot is now busy generating
    with pytest.raises(EngineBusy) as refused:
        await anext(engine.stream(MESSAGES, SamplingParams(max_tokens=4)))
    assert refused.value.headers == {"Retry-After": "5"}
    await running.aclose()
    events = [e async for e in engine.stream(MESSAGES, SamplingParams(max_tokens=4))]
    assert isinstance(events[-1], Completion)  # the slot was freed


async def test_closing_the_stream_stops_generation(engine: LocalEngine) -> None:
    stream = engine.stream(MESSAGES, SamplingParams(max_tokens=2000))
    await anext(stream)
    started = asyncio.get_running_loop().time()
    await stream.aclose()  # what a closed SSE connection does
    assert asyncio.get_running_loop().time() - started < 5  # did not run 2000 tokens
    assert (await engine.health()).detail == "0 in flight"


async def test_missing_model_says_how_to_prepare_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotPrepared, match="tunedesk model prepare"):
        await LocalEngine(tmp_path / "nothing").start()


SYSTEM = "You are the support assistant of Halcyon Home. " + " ".join(
    f"Rule {i}: answer only from the numbered sources and cite them." for i in range(12)
)


def conversation(question: str, template: str = "", sources: str = "") -> list[ChatMessage]:
    """Rules, then a troubleshooting template, then sources: the prompt layer's shape."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "system", "content": f"Troubleshooting guide {template}: " + "check it. " * 20},
        {"role": "system", "content": f"Sources: [1] {sources or question}"},
        {"role": "user", "content": question},
    ]


async def generated_text(engine: LocalEngine, messages: list[ChatMessage], **kw: object) -> str:
    params = SamplingParams(max_tokens=12)
    events = [e async for e in engine.stream(messages, params, **kw)]  # type: ignore[arg-type]
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_prefix_reuse_changes_nothing_but_speed(tiny_model_dir: Path) -> None:
    cached = LocalEngine(tiny_model_dir, prefix_cache_size=4)
    plain = LocalEngine(tiny_model_dir, prefix_cache_size=0)
    await cached.start()
    await plain.start()
    prompt = cached.runtime.render(conversation("E5 again", "E5"))
    assert len(prompt.boundaries) == 2  # after the rules, after the template
    assert prompt.boundaries[0] > 32  # longer than the tiny model's sliding window
    asked = [
        ("My router shows E5.", "E5"),
        ("The LED is red.", "E5"),
        ("It says E4.", "E4"),
        ("My router shows E5.", "E5"),
    ]
    for question, template in asked:
        expected = await generated_text(plain, conversation(question, template))
        assert await generated_text(cached, conversation(question, template)) == expected
    cache = cached.runtime.prefix_cache
    # 1st: both levels missed; 2nd: rules+E5 hit; 3rd: rules+E4 missed, rules hit; 4th: hit
    assert (cache.misses, cache.hits) == (3, 3)


async def test_adapters_switch_per_request_and_load_at_run_time(
    engine: LocalEngine, tiny_adapters: dict[str, Path]
) -> None:
    question = conversation("My router shows E5.")
    base = await generated_text(engine, question)
    await engine.load_adapter("alpha", str(tiny_adapters["alpha"]))
    await engine.load_adapter("beta", str(tiny_adapters["beta"]))
    assert await engine.list_adapters() == ["alpha", "beta"]
    alpha = await generated_text(engine, question, adapter="alpha")
    beta = await generated_text(engine, question, adapter="beta")
    assert len({base, alpha, beta}) == 3
    assert await generated_text(engine, question) == base  # the base model is untouched
    assert await generated_text(engine, question, adapter="alpha") == alpha
    await engine.unload_adapter("beta")
    assert await engine.list_adapters() == ["alpha"]
    assert await generated_text(engine, question, adapter="alpha") == alpha
    await engine.unload_adapter("alpha")  # the last one: the plain model answers again
    assert await engine.list_adapters() == []
    assert await generated_text(engine, question) == base
    await engine.load_adapter("alpha", str(tiny_adapters["alpha"]))
    assert await generated_text(engine, question, adapter="alpha") == alpha


async def test_int8_head_quantises_the_output_projection_alone(
    tiny_model_dir: Path, tiny_adapters: dict[str, Path]
) -> None:
    """`engine.weights=int8-head`: fp32 layers (dynamic int8 activations cost the sample set
    0.035 token F1, docs/evaluation.md), int8 only where decoding reads most, the output layer."""
    from torch import nn

    from service.engines.quantization import Int8Linear

    kinds: dict[str, dict[str, int]] = {}
    answers: dict[str, str] = {}
    for weights in ("int8", "int8-head", "fp32"):
        engine = LocalEngine(tiny_model_dir, weights=weights)
        await engine.start()
        try:
            await engine.load_adapter("alpha", str(tiny_adapters["alpha"]))
            answers[weights] = await generated_text(
                engine, conversation("My router shows E5."), adapter="alpha"
            )
            modules = list(engine.runtime.model.named_modules())
            kinds[weights] = {
                "int8": sum(isinstance(m, Int8Linear) for _, m in modules),
                "lm_head": int(
                    isinstance(engine.runtime.model.get_output_embeddings(), Int8Linear)
                ),
                "fp32": sum(type(m) is nn.Linear and "lora_" not in n for n, m in modules),
            }
        finally:
            await engine.aclose()
    assert kinds["int8-head"]["int8"] == kinds["int8-head"]["lm_head"] == 1
    assert kinds["int8"]["int8"] > 1 and kinds["int8"]["fp32"] == 0
    assert kinds["fp32"]["int8"] == 0 and kinds["int8-head"]["fp32"] == kinds["fp32"]["fp32"] - 1
    assert all(answers.values())
