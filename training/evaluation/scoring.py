"""Per-variant figures from the answers: the means a reader compares, per question kind too."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from training.evaluation.cases import AnswerCase
from training.evaluation.metrics import (
    citations_correct,
    is_refusal,
    offers_human,
    rouge_l,
    token_f1,
)
from training.evaluation.runner import Answer


@dataclass
class Scored:
    """One answer with its scores."""

    answer: Answer
    kind: str
    token_f1: float
    rouge_l: float
    refused: bool
    offers_human: bool
    cites_gold: bool | None  # None: no gold source, or no numbered sources in the prompt


@dataclass
class VariantScore:
    """What one variant achieved over the whole set. None: the set cannot measure it."""

    variant: str
    questions: int
    token_f1: float
    rouge_l: float
    citation_accuracy: float | None
    refusal_rate: float | None  # out-of-scope questions declined
    false_refusal_rate: float | None  # in-scope questions declined
    handoff_offered: float | None  # hand-off questions answered with an offer of a human
    echo_rate: float  # answers that copy the prompt back instead of answering
    ttft_s: float | None
    prompt_tokens: float | None
    completion_tokens: float | None
    model_answers: int
    ended_rate: float | None = None  # model answers whose end of turn came before the cap
    cut_rate: float | None = None  # model answers the service's hygiene cut short
    leak_rate: float | None = None  # model answers replaced for copying the rules
    median_tokens: float | None = None  # of model answers
    by_kind: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_answer(
    case: AnswerCase, answer: Answer, canned: Sequence[str], with_sources: bool
) -> Scored:
    """Every metric of one answer against its case."""
    gold = bool(case.gold_sources) and case.kind != "out_of_scope"
    return Scored(
        answer=answer,
        kind=case.kind,
        token_f1=token_f1(answer.text, case.reference),
        rouge_l=rouge_l(answer.text, case.reference),
        refused=is_refusal(answer.text, canned) and not answer.echoed,
        offers_human=offers_human(answer.text) and not answer.echoed,
        cites_gold=citations_correct(answer.cited, case.gold_sources) and not answer.echoed
        if gold and with_sources
        else None,
    )


def summarize(variant: str, scored: Sequence[Scored]) -> VariantScore:
    """The variant's means; rates over the questions each one applies to."""
    model = [s.answer for s in scored if s.answer.outcome == "model"]
    ttfts = [a.ttft_s for a in model if a.ttft_s is not None]
    return VariantScore(
        variant=variant,
        questions=len(scored),
        token_f1=_mean([s.token_f1 for s in scored]) or 0.0,
        rouge_l=_mean([s.rouge_l for s in scored]) or 0.0,
        citation_accuracy=_rate([s.cites_gold for s in scored if s.cites_gold is not None]),
        refusal_rate=_rate([s.refused for s in scored if s.kind == "out_of_scope"]),
        false_refusal_rate=_rate([s.refused for s in scored if s.kind == "in_scope"]),
        handoff_offered=_rate([s.offers_human for s in scored if s.kind == "handoff"]),
        echo_rate=_rate([s.answer.echoed for s in scored]) or 0.0,
        ttft_s=_mean(ttfts),
        prompt_tokens=_mean([a.prompt_tokens for a in model]),
        completion_tokens=_mean([a.completion_tokens for a in model]),
        model_answers=len(model),
        ended_rate=_rate([a.ended_by_model for a in model]),
        cut_rate=_rate([a.cut_rule is not None and not a.leaked for a in model]),
        leak_rate=_rate([a.leaked for a in model]),
        median_tokens=statistics.median([a.completion_tokens for a in model]) if model else None,
        by_kind=_by_kind(scored),
    )


def _by_kind(scored: Sequence[Scored]) -> dict[str, dict[str, float]]:
    kinds = sorted({s.kind for s in scored})
    return {
        kind: {
            "questions": len(group := [s for s in scored if s.kind == kind]),
            "token_f1": _mean([s.token_f1 for s in group]) or 0.0,
            "rouge_l": _mean([s.rouge_l for s in group]) or 0.0,
        }
        for kind in kinds
    }


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _rate(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None
