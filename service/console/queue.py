"""The review queue: answers ordered by how much they need a human, with filters.

Order: a customer's thumbs-down, then low retrieval confidence, then answers cut at the cap or
cut/replaced by answer hygiene, then hand-offs, then the rest; answers an agent already rated
come after all of those."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, Select, case, exists, func, or_, select

from service.store.models import Conversation, Message, Rating

RatingState = Literal["any", "unrated", "rated", "customer_bad", "customer_good"]
RATING_STATES: tuple[RatingState, ...] = (
    "any",
    "unrated",
    "rated",
    "customer_bad",
    "customer_good",
)
CUT = ("length", "prompt_leak", "cut_debris", "cut_repeat")
NEEDS = {
    0: "customer thumbs-down",
    1: "low retrieval confidence",
    2: "cut or replaced",
    3: "hand-off",
    4: "unrated",
}


@dataclass(frozen=True)
class QueueFilter:
    """What the queue filters on; None (or `any`) means no filter."""

    product: str | None = None
    channel: str | None = None
    model_version: str | None = None
    rating: RatingState = "any"
    since: date | None = None
    until: date | None = None  # inclusive

    def query_string(self) -> str:
        from urllib.parse import urlencode

        fields = {k: v for k, v in vars(self).items() if v not in (None, "", "any")}
        return urlencode({k: str(v) for k, v in fields.items()})


@dataclass(frozen=True)
class QueueItem:
    message: Message
    conversation: Conversation
    need: int
    agent_rated: bool
    customer_verdict: str | None

    @property
    def reason(self) -> str:
        if self.message.finish_reason in CUT:
            return {"length": "cut at the cap", "prompt_leak": "leak replaced"}.get(
                self.message.finish_reason or "", "cut by hygiene"
            )
        return NEEDS[self.need]


def _rated_by(rater: str, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(Rating.message_id == Message.id, Rating.rater == rater, *conditions)


def customer_bad() -> ColumnElement[bool]:
    return _rated_by("customer", or_(Rating.label == "bad", Rating.score <= 2))


def customer_good() -> ColumnElement[bool]:
    return _rated_by("customer", or_(Rating.label == "good", Rating.score >= 4))


def agent_rated() -> ColumnElement[bool]:
    return _rated_by("agent")


def need() -> ColumnElement[Any]:
    cut = or_(Message.finish_reason.in_(CUT), Message.raw_content.is_not(None))
    return case(
        (customer_bad(), 0),
        (Message.finish_reason == "low_confidence", 1),
        (cut, 2),
        (Message.finish_reason == "handoff", 3),
        else_=4,
    )


def version_of() -> ColumnElement[str]:
    """The model_version label the metrics use: version, else adapter, else base."""
    return func.coalesce(Message.model_version, Message.adapter, "base")


def answers(tenant_id: str, where: QueueFilter) -> Select[Any]:
    """The tenant's answers (assistant messages) matching the filter, with their conversation."""
    query = cast(
        "Select[Any]",
        select(Message, Conversation)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.tenant_id == tenant_id, Message.role == "assistant"),
    )
    conditions = [
        Message.product == where.product if where.product else None,
        Conversation.channel == where.channel if where.channel else None,
        version_of() == where.model_version if where.model_version else None,
        Message.created_at >= _start(where.since) if where.since else None,
        Message.created_at < _start(where.until + timedelta(days=1)) if where.until else None,
        _rating_condition(where.rating),
    ]
    return query.where(*[c for c in conditions if c is not None])


def _rating_condition(state: RatingState) -> ColumnElement[bool] | None:
    return {
        "unrated": ~agent_rated(),
        "rated": agent_rated(),
        "customer_bad": customer_bad(),
        "customer_good": customer_good(),
    }.get(state)


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def queue_query(tenant_id: str, where: QueueFilter, limit: int) -> Select[Any]:
    rated, needed = agent_rated(), need()
    return (
        answers(tenant_id, where)
        .add_columns(needed, rated, customer_bad(), customer_good())
        .order_by(rated, needed, Message.created_at.desc(), Message.id)
        .limit(limit)
    )


def queue_item(row: Any) -> QueueItem:
    message, conversation, needed, rated, bad, good = row
    verdict = "bad" if bad else ("good" if good else None)
    return QueueItem(message, conversation, int(needed), bool(rated), verdict)
