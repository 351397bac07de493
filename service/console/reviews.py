"""Reviewing answers: the queue, one answer in its conversation, and agents' ratings.

A console rating is an ordinary agent rating (the `ratings` table, append-only, what the
dataset builder reads), given through the rating service (examples, metrics, webhooks), plus
an `agent_ratings` row that says which agent gave it."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from service.chat.ratings import RatingService
from service.console.queue import (
    QueueFilter,
    QueueItem,
    answers,
    queue_item,
    queue_query,
    version_of,
)
from service.errors import ConversationNotFound, InvalidRequest, MessageNotFound
from service.store.models import Agent, AgentRating, Conversation, Message, Rating
from service.store.repository import RatingInput

MAX_TAGS = 10


@dataclass(frozen=True)
class ConsoleRating:
    """What an agent submits: at least a label or a score."""

    label: str | None = None
    score: int | None = None
    tags: list[str] = field(default_factory=list)
    comment: str | None = None
    corrected_answer: str | None = None


@dataclass(frozen=True)
class RatingView:
    rating: Rating
    by: str  # the agent's email, or `customer`


@dataclass(frozen=True)
class Agreement:
    """How agents' latest verdicts on one answer agree."""

    raters: int
    good: int
    bad: int

    @property
    def share(self) -> float | None:
        """The majority's share among agents with a verdict; None below two."""
        voted = self.good + self.bad
        return max(self.good, self.bad) / voted if voted >= 2 else None


def verdict(label: str | None, score: int | None) -> str | None:
    if label in ("good", "bad"):
        return label
    if score is None or score == 3:
        return None
    return "good" if score >= 4 else "bad"


def agreement(ratings: list[RatingView]) -> Agreement:
    latest: dict[str, str | None] = {}
    for view in sorted(ratings, key=lambda v: v.rating.created_at):
        if view.rating.rater == "agent":
            latest[view.by] = verdict(view.rating.label, view.rating.score)
    votes = Counter(v for v in latest.values() if v)
    return Agreement(len(latest), votes["good"], votes["bad"])


class Reviews:
    def __init__(self, sessions: sessionmaker[Session], ratings: RatingService) -> None:
        self.sessions = sessions
        self._sessions = sessions
        self._ratings = ratings

    def queue(self, tenant_id: str, where: QueueFilter, limit: int) -> list[QueueItem]:
        with self._sessions() as s:
            return [queue_item(row) for row in s.execute(queue_query(tenant_id, where, limit))]

    def choices(self, tenant_id: str) -> dict[str, list[str]]:
        """What the queue's filters offer: the tenant's products, channels and versions."""
        base = answers(tenant_id, QueueFilter())
        with self._sessions() as s:
            return {
                name: sorted(v for v in s.scalars(base.with_only_columns(col).distinct()) if v)
                for name, col in (
                    ("products", Message.product),
                    ("channels", Conversation.channel),
                    ("versions", version_of()),
                )
            }

    def conversation(self, tenant_id: str, conversation_id: str) -> Conversation:
        loaded = selectinload(Conversation.messages).selectinload(Message.ratings)
        with self._sessions() as s:
            row = s.scalar(
                select(Conversation).options(loaded).where(Conversation.id == conversation_id)
            )
        if row is None or row.tenant_id != tenant_id:
            raise ConversationNotFound(f"No conversation with id {conversation_id!r}.")
        return row

    def answer(self, tenant_id: str, message_id: str) -> Message:
        with self._sessions() as s:
            row = s.get(Message, message_id)
            tenant = row.conversation.tenant_id if row is not None else None
        if row is None or tenant != tenant_id or row.role != "assistant":
            raise MessageNotFound(f"No answer with id {message_id!r}.")
        return row

    def ratings_of(self, message_ids: list[str]) -> dict[str, list[RatingView]]:
        """Every rating of these answers, oldest first, with who gave it."""
        query = (
            select(Rating, Agent.email)
            .outerjoin(AgentRating, AgentRating.rating_id == Rating.id)
            .outerjoin(Agent, Agent.id == AgentRating.agent_id)
            .where(Rating.message_id.in_(message_ids))
            .order_by(Rating.created_at, Rating.id)
        )
        found: dict[str, list[RatingView]] = {m: [] for m in message_ids}
        with self._sessions() as s:
            for rating, email in s.execute(query):
                who = email or ("agent (API)" if rating.rater == "agent" else "customer")
                found[rating.message_id].append(RatingView(rating, who))
        return found

    async def rate(
        self, tenant_id: str, agent_id: str, message_id: str, given: ConsoleRating
    ) -> Rating:
        """Store an agent's rating and who gave it; an earlier rating is never changed."""
        answer = await asyncio.to_thread(self.answer, tenant_id, message_id)
        row = await self._ratings.rate(tenant_id, message_id, _rating_input(given, answer))
        author = AgentRating(rating_id=row.id, agent_id=agent_id, tenant_id=tenant_id)
        await asyncio.to_thread(self._add, author)
        return row

    def _add(self, row: AgentRating) -> None:
        with self._sessions.begin() as s:
            s.add(row)


def _rating_input(given: ConsoleRating, answer: Message) -> RatingInput:
    if given.label is None and given.score is None:
        raise InvalidRequest("Give a verdict: label good or bad, or a score from 1 to 5.")
    corrected = (given.corrected_answer or "").strip()
    tags = sorted({t.strip().lower() for t in given.tags if t.strip()})[:MAX_TAGS]
    return RatingInput(
        rater="agent",
        label=given.label,
        score=given.score,
        # an untouched editor is no correction: only a changed answer teaches anything
        corrected_answer=corrected if corrected and corrected != answer.content.strip() else None,
        comment=(given.comment or "").strip() or None,
        tags=tags or None,
    )
