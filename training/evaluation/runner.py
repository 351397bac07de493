"""Ask every question in every variant through the local CPU engine, and time the answers.

Time to first token is measured from the question to the first generated text, so prompted
variants pay for their retrieval, template choice and example lookup as a customer would.
Answers the service gives without the model (hand-off, refusals) have no time to first token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from service.engines.base import Completion, Engine, SamplingParams, TextDelta
from service.prompting.builder import cited_numbers
from training.evaluation.cases import AnswerCase
from training.evaluation.metrics import echoes_prompt
from training.evaluation.variants import Plan, Planner, Variant

Progress = Callable[[Sequence[AnswerCase], str], Iterable[AnswerCase]]


@dataclass
class Answer:
    """One variant's answer to one question and what it cost."""

    case_id: str
    variant: str
    text: str
    outcome: str  # model, handoff, out_of_scope, low_confidence
    cited: list[str] = field(default_factory=list)
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    echoed: bool = False  # opens by copying the prompt back


async def answer_all(
    engine: Engine,
    variant: Variant,
    planner: Planner,
    cases: Sequence[AnswerCase],
    params: SamplingParams,
    adapter: str | None,
    progress: Progress = lambda cases, _: cases,
) -> list[Answer]:
    """Every case in one variant, one at a time (as the CPU engine serves them)."""
    return [
        await _answer(engine, variant, planner, case, params, adapter)
        for case in progress(cases, variant.name)
    ]


async def _answer(
    engine: Engine,
    variant: Variant,
    planner: Planner,
    case: AnswerCase,
    params: SamplingParams,
    adapter: str | None,
) -> Answer:
    started = time.perf_counter()
    plan = planner.plan(case)
    if plan.canned is not None:
        return Answer(case.id, variant.name, plan.canned, plan.outcome)
    pieces, completion, first = await _generate(engine, plan, params, adapter)
    text = "".join(pieces)
    cited = [plan.sources[n - 1] for n in cited_numbers(text, len(plan.sources))]
    return Answer(
        case.id,
        variant.name,
        text,
        plan.outcome,
        cited,
        ttft_s=first - started if first is not None else None,
        prompt_tokens=completion.prompt_tokens if completion else 0,
        completion_tokens=completion.completion_tokens if completion else 0,
        seconds=time.perf_counter() - started,
        echoed=echoes_prompt(text, [m["content"] for m in plan.messages]),
    )


async def _generate(
    engine: Engine, plan: Plan, params: SamplingParams, adapter: str | None
) -> tuple[list[str], Completion | None, float | None]:
    pieces: list[str] = []
    completion: Completion | None = None
    first: float | None = None
    async for event in engine.stream(plan.messages, params, adapter):
        if isinstance(event, TextDelta):
            first = first or time.perf_counter()
            pieces.append(event.text)
        else:
            completion = event
    return pieces, completion, first
