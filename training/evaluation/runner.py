"""Ask every question in every variant through the local CPU engine, and time the answers.

Time to first token is measured from the question to the first generated text, so prompted
variants pay for their retrieval, template choice and example lookup as a customer would.
Answers the service gives without the model (hand-off, refusals) have no time to first token.
With the service's answer hygiene (service/chat/hygiene.py), the model's text goes through the
same guard a customer's answer does: generation stops at the first debris or repeat, a copy of
the rules is replaced by the low-confidence reply, and the score is of what the customer sees.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from service.chat.hygiene import AnswerGuard, Hygiene
from service.engines.base import Completion, Engine, SamplingParams
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
    raw_text: str = ""  # what the model wrote, before hygiene
    finish_reason: str = ""  # stop (the model ended its turn), length (the cap), or a cut
    cut_rule: str | None = None  # the hygiene rule that ended or replaced the answer
    leaked: bool = False  # replaced: the model copied its rules

    @property
    def ended_by_model(self) -> bool:
        """The model emitted its end of turn before the cap, with no cut needed."""
        return self.finish_reason == "stop" and self.cut_rule is None


async def answer_all(
    engine: Engine,
    variant: Variant,
    planner: Planner,
    cases: Sequence[AnswerCase],
    params: SamplingParams,
    adapter: str | None,
    progress: Progress = lambda cases, _: cases,
    hygiene: Hygiene | None = None,
) -> list[Answer]:
    """Every case in one variant, one at a time (as the CPU engine serves them)."""
    if hygiene is not None:
        params = SamplingParams(**(vars(params) | {"stop": hygiene.stop_strings()}))
    return [
        await _answer(engine, variant, planner, case, params, adapter, hygiene)
        for case in progress(cases, variant.name)
    ]


async def _answer(
    engine: Engine,
    variant: Variant,
    planner: Planner,
    case: AnswerCase,
    params: SamplingParams,
    adapter: str | None,
    hygiene: Hygiene | None = None,
) -> Answer:
    started = time.perf_counter()
    plan = planner.plan(case)
    if plan.canned is not None:
        return Answer(case.id, variant.name, plan.canned, plan.outcome)
    guard = hygiene.guard(plan.source_texts, case.question) if hygiene is not None else None
    pieces, completion, first = await _generate(engine, plan, params, adapter, guard)
    raw = "".join(pieces)
    verdict = guard.result().verdict if guard is not None else None
    text = guard.result().text if guard is not None else raw
    cited = [plan.sources[n - 1] for n in cited_numbers(text, len(plan.sources))]
    tokens = completion.completion_tokens if completion else len(pieces)
    return Answer(
        case.id,
        variant.name,
        text,
        plan.outcome,
        cited,
        ttft_s=first - started if first is not None else None,
        prompt_tokens=completion.prompt_tokens if completion else plan.prompt_tokens,
        completion_tokens=tokens,
        seconds=time.perf_counter() - started,
        echoed=echoes_prompt(text, [m["content"] for m in plan.messages]),
        raw_text=raw,
        finish_reason=verdict.reason if verdict else completion.finish_reason if completion else "",
        cut_rule=verdict.rule if verdict else None,
        leaked=verdict is not None and verdict.reason == "prompt_leak",
    )


async def _generate(
    engine: Engine,
    plan: Plan,
    params: SamplingParams,
    adapter: str | None,
    guard: AnswerGuard | None,
) -> tuple[list[str], Completion | None, float | None]:
    """The model's pieces; with a guard, generation stops where the service's would."""
    pieces: list[str] = []
    completion: Completion | None = None
    first: float | None = None
    stream = engine.stream(plan.messages, params, adapter)
    try:
        async for event in stream:
            if isinstance(event, Completion):
                completion = event
                if guard is not None and event.stop_sequence is not None:
                    guard.stopped_on(event.stop_sequence)
                continue
            first = first or time.perf_counter()
            pieces.append(event.text)
            if guard is not None:
                guard.feed(event.text)
                if guard.verdict is not None:
                    break  # the service closes the stream here: the rest is never generated
    finally:
        await stream.aclose()
    if guard is not None:
        guard.finish()
    return pieces, completion, first
