"""The dashboard's figures for one tenant: answers per day, customers' thumbs-up rate,
agent-rated quality, hand-off rate and resolution rate, each by model version and product."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.console.queue import version_of
from service.console.reviews import verdict
from service.store.models import Conversation, Message, Rating, as_utc

MAX_ANSWERS = 50_000


@dataclass
class Answer:
    day: date
    conversation_id: str
    version: str
    product: str
    customer: list[str] = field(default_factory=list)  # verdicts
    agent: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Rate:
    """A share with the number it is a share of."""

    label: str
    value: float | None
    n: int


@dataclass(frozen=True)
class Insight:
    days: list[date]
    answers_per_day: dict[str, list[int]]  # version → count per day
    rates: dict[str, dict[str, list[Rate]]]  # metric → split (version, product) → rates
    totals: dict[str, Rate]


METRICS = {
    "thumbs_up": "Customer thumbs-up rate",
    "agent_quality": "Agent-rated quality (share good)",
    "handoff": "Hand-off rate (conversations)",
    "resolution": "Resolution rate (conversations)",
}


def insight(sessions: sessionmaker[Session], tenant_id: str, since: date, until: date) -> Insight:
    with sessions() as s:
        answers = _answers(s, tenant_id, since, until)
        conversations = _conversations(s, {a.conversation_id for a in answers.values()})
    days = [since + timedelta(days=i) for i in range((until - since).days + 1)]
    per_day: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    for a in answers.values():
        per_day[a.version][(a.day - since).days] += 1
    first = _first_answer_of_each_conversation(answers.values())
    rates: dict[str, dict[str, list[Rate]]] = {}
    totals: dict[str, Rate] = {}
    for metric, (items, outcome) in _outcomes(answers.values(), first, conversations).items():
        rates[metric] = {
            split: _rates(items, key, outcome)
            for split, key in (("version", _version), ("product", _product))
        }
        totals[metric] = (
            _rates(items, lambda _: "all", outcome)[0] if items else Rate("all", None, 0)
        )
    return Insight(days, dict(per_day), rates, totals)


def _version(item: Any) -> str:
    return str(item[0].version)


def _product(item: Any) -> str:
    return str(item[0].product)


def _outcomes(
    answers: Iterable[Answer], first: list[Answer], conversations: dict[str, tuple[str, bool]]
) -> dict[str, tuple[list[tuple[Answer, bool]], Callable[[Any], bool]]]:
    """For each metric: the (answer, outcome) items it is a share of."""
    voted = [(a, v == "good") for a in answers for v in a.customer]
    graded = [(a, v == "good") for a in answers for v in a.agent]
    status = [(a, conversations[a.conversation_id]) for a in first]
    handed = [(a, handoff) for a, (_, handoff) in status]
    resolved = [(a, state == "resolved") for a, (state, _) in status]
    outcome: Callable[[Any], bool] = lambda item: bool(item[1])  # noqa: E731
    return {
        "thumbs_up": (voted, outcome),
        "agent_quality": (graded, outcome),
        "handoff": (handed, outcome),
        "resolution": (resolved, outcome),
    }


def _rates(
    items: list[Any], key: Callable[[Any], str], outcome: Callable[[Any], bool]
) -> list[Rate]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(outcome(item))
    return [Rate(label, sum(hits) / len(hits), len(hits)) for label, hits in sorted(groups.items())]


def _first_answer_of_each_conversation(answers: Iterable[Answer]) -> list[Answer]:
    first: dict[str, Answer] = {}
    for a in answers:  # oldest first: the version a conversation met first owns it
        first.setdefault(a.conversation_id, a)
    return list(first.values())


def _answers(s: Session, tenant_id: str, since: date, until: date) -> dict[str, Answer]:
    start = datetime.combine(since, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    query = (
        select(
            Message.id, Message.conversation_id, Message.created_at, version_of(), Message.product
        )
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.tenant_id == tenant_id, Message.role == "assistant")
        .where(Message.created_at >= start, Message.created_at < end)
        .order_by(Message.created_at)
        .limit(MAX_ANSWERS)
    )
    found = {
        row[0]: Answer(as_utc(row[2]).date(), row[1], row[3], row[4] or "(none)")
        for row in s.execute(query)
    }
    ratings = select(Rating.message_id, Rating.rater, Rating.label, Rating.score).where(
        Rating.message_id.in_(list(found))
    )
    for message_id, rater, label, score in s.execute(ratings):
        if (v := verdict(label, score)) is not None:
            (found[message_id].agent if rater == "agent" else found[message_id].customer).append(v)
    return found


def _conversations(s: Session, ids: set[str]) -> dict[str, tuple[str, bool]]:
    query = select(Conversation.id, Conversation.status, Conversation.handoff_reason).where(
        Conversation.id.in_(list(ids))
    )
    return {
        cid: (status, status == "handoff" or reason is not None)
        for cid, status, reason in s.execute(query)
    }
