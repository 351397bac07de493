"""The publish gate: a candidate may replace the active version only if it is not worse by more
than a margin on any metric of `tunedesk eval answers`.

Quality metrics are rates and means in 0-1, so their margin is absolute (0.02 = two points).
Time to first token is compared relatively (0.5 = up to 50% slower): both runs use the same
base model, so a difference there is mostly machine noise, but a much slower adapter is still
caught. A metric the held-out set cannot measure (no out-of-scope questions, say) is shown but
not gated; one the active version has and the candidate lacks fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Direction = Literal["higher", "lower"]
QUALITY_METRICS: list[tuple[str, Direction]] = [
    ("token_f1", "higher"),
    ("rouge_l", "higher"),
    ("citation_accuracy", "higher"),
    ("refusal_rate", "higher"),  # out-of-scope questions declined
    ("false_refusal_rate", "lower"),  # in-scope questions declined
    ("handoff_offered", "higher"),
]
LATENCY_METRICS: list[tuple[str, Direction]] = [("ttft_s", "lower")]
EPSILON = 1e-9  # equal scores pass whatever rounding the JSON went through


@dataclass(frozen=True)
class MetricCheck:
    """One metric of the candidate against the active version."""

    metric: str
    better: Direction
    candidate: float | None
    active: float | None
    delta: float | None  # candidate - active
    limit: float | None  # the worst value the candidate may have
    passed: bool
    note: str = ""


@dataclass
class Comparison:
    """The gate's verdict and everything it was based on; stored with the version."""

    passed: bool
    margin: float
    ttft_margin: float | None
    candidate: dict[str, Any]
    active: dict[str, Any]
    metrics: list[MetricCheck] = field(default_factory=list)
    setup: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def failures(self) -> list[MetricCheck]:
        return [m for m in self.metrics if not m.passed]

    def table(self) -> str:
        """Fixed-width lines for the terminal."""
        lines = [f"{'metric':<20}{'active':>10}{'candidate':>11}{'delta':>10}{'limit':>10}  gate"]
        for m in self.metrics:
            verdict = "ok" if m.passed else "WORSE"
            lines.append(
                f"{m.metric:<20}{_num(m.active):>10}{_num(m.candidate):>11}{_num(m.delta):>10}"
                f"{_num(m.limit):>10}  {verdict}{' (' + m.note + ')' if m.note else ''}"
            )
        return "\n".join(lines)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def check_metric(
    metric: str, better: Direction, candidate: float | None, active: float | None, slack: float
) -> MetricCheck:
    """Pass unless the candidate is worse than the active value by more than `slack`."""
    if active is None:
        return MetricCheck(metric, better, candidate, None, None, None, True, "not measured")
    if candidate is None:
        note = "the candidate was not measured on it"
        return MetricCheck(metric, better, None, active, None, None, False, note)
    limit = active - slack if better == "higher" else active + slack
    passed = candidate >= limit - EPSILON if better == "higher" else candidate <= limit + EPSILON
    return MetricCheck(metric, better, candidate, active, candidate - active, limit, passed)


def compare(
    candidate: Mapping[str, Any],
    active: Mapping[str, Any],
    margin: float = 0.02,
    ttft_margin: float | None = 0.5,
) -> Comparison:
    """The gate over two variant summaries (one `variants` entry of an evaluation JSON each)."""
    checks = [
        check_metric(name, better, candidate.get(name), active.get(name), margin)
        for name, better in QUALITY_METRICS
    ]
    for name, better in LATENCY_METRICS:
        ours, theirs = candidate.get(name), active.get(name)
        if ttft_margin is None or theirs is None:
            checks.append(_reported_only(name, better, ours, theirs))
        else:
            checks.append(check_metric(name, better, ours, theirs, theirs * ttft_margin))
    return Comparison(
        passed=all(c.passed for c in checks),
        margin=margin,
        ttft_margin=ttft_margin,
        candidate=dict(candidate),
        active=dict(active),
        metrics=checks,
    )


def _reported_only(
    metric: str, better: Direction, candidate: float | None, active: float | None
) -> MetricCheck:
    delta = candidate - active if candidate is not None and active is not None else None
    return MetricCheck(metric, better, candidate, active, delta, None, True, "not gated")
