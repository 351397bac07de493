"""The conversation store: the only code that reads and writes conversations, messages, ratings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from service.errors import Conflict, ConversationNotFound, InvalidRequest, MessageNotFound
from service.store import pagination
from service.store.models import Conversation, Message, Rating, utcnow


@dataclass
class AnswerRecord:
    """Everything about one generated answer that is stored beside its text."""

    content: str
    product: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    citations: list[int] = field(default_factory=list)
    prompt_template_id: str | None = None
    prompt_template_version: int | None = None
    troubleshooting_template_id: str | None = None
    troubleshooting_template_version: int | None = None
    model: str | None = None
    adapter: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    example_ids: list[str] = field(default_factory=list)
    prompt: list[dict[str, str]] = field(default_factory=list)
    model_version: str | None = None
    raw_content: str | None = None  # the model's own text, when hygiene cut or replaced it
    flags: list[str] = field(default_factory=list)  # e.g. cut_debris:sign_off


@dataclass(frozen=True)
class ConversationFilter:
    """What GET /v1/conversations may filter on; None means any."""

    status: str | None = None
    product: str | None = None
    channel: str | None = None
    customer_ref: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass
class RatingInput:
    """A rating of one assistant message, by a customer or an agent."""

    rater: str
    label: str | None = None
    score: int | None = None
    corrected_answer: str | None = None
    comment: str | None = None
    tags: list[str] | None = None


class ConversationStore:
    """Synchronous store; async callers run it in a worker thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def start_conversation(
        self,
        tenant_id: str,
        product: str | None,
        channel: str = "api",
        customer_ref: str | None = None,
        widget_key: str | None = None,
    ) -> Conversation:
        conversation = Conversation(
            tenant_id=tenant_id,
            product=product,
            channel=channel,
            customer_ref=customer_ref,
            api_key_id=widget_key,
        )
        with self._sessions.begin() as s:
            s.add(conversation)
        return conversation

    def get_conversation(
        self, tenant_id: str, conversation_id: str, widget_key: str | None = None
    ) -> Conversation:
        """The tenant's conversation with its messages; another tenant's, or for a widget key
        one it did not start, is simply not found."""
        loaded = selectinload(Conversation.messages).selectinload(Message.ratings)
        with self._sessions() as s:
            conversation = s.scalar(
                select(Conversation).options(loaded).where(Conversation.id == conversation_id)
            )
        return _visible(conversation, conversation_id, tenant_id, widget_key)

    def list_conversations(
        self, tenant_id: str, where: ConversationFilter, limit: int, cursor: str | None
    ) -> tuple[list[Conversation], str | None]:
        """Newest first; the cursor continues after the last conversation of the page."""
        query = _filtered(select(Conversation), tenant_id, where)
        columns = (Conversation.created_at, Conversation.id)
        with self._sessions() as s:
            return pagination.newest_first(s, query, columns, limit, cursor)

    def close(self, tenant_id: str, conversation_id: str) -> Conversation:
        """Mark resolved; closing a resolved conversation changes nothing."""
        with self._sessions.begin() as s:
            conversation = _owned(s, tenant_id, conversation_id)
            if conversation.status != "resolved":
                conversation.status = "resolved"
                conversation.closed_at = conversation.updated_at = utcnow()
        return conversation

    def request_handoff(
        self, tenant_id: str, conversation_id: str, reason: str, widget_key: str | None = None
    ) -> Conversation:
        with self._sessions.begin() as s:
            conversation = _owned(s, tenant_id, conversation_id, widget_key)
            if conversation.status == "resolved":
                raise Conflict("The conversation is resolved; start a new one.")
            conversation.status = "handoff"
            conversation.handoff_reason = reason
            conversation.updated_at = utcnow()
        return conversation

    def history(self, conversation_id: str, limit: int) -> list[Message]:
        """The newest `limit` messages, oldest first."""
        with self._sessions() as s:
            rows = s.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.seq.desc())
                .limit(limit)
            ).all()
        return list(reversed(rows))

    def add_user_message(
        self, conversation_id: str, text: str, product: str | None, flags: list[str]
    ) -> Message:
        message = Message(role="user", content=text, product=product, flags=flags or None)
        return self._add(conversation_id, message)

    def withdraw_question(
        self, conversation_id: str, message_id: str, drop_conversation: bool
    ) -> None:
        """Undo a question the engine refused to take: a retry then starts clean, not twice.

        `drop_conversation`: the question opened it, and it goes too once it holds nothing.
        """
        with self._sessions.begin() as s:
            s.execute(delete(Message).where(Message.id == message_id))
            if drop_conversation:
                remaining = select(Message.id).where(Message.conversation_id == conversation_id)
                s.execute(
                    delete(Conversation).where(
                        Conversation.id == conversation_id, ~remaining.exists()
                    )
                )

    def mark_handoff(self, conversation_id: str, reason: str) -> None:
        """Flag the conversation for a human; the reason says which trigger fired."""
        with self._sessions.begin() as s:
            conversation = s.get(Conversation, conversation_id)
            if conversation is None:
                raise ConversationNotFound(f"No conversation with id {conversation_id!r}.")
            conversation.status = "handoff"
            conversation.handoff_reason = reason
            conversation.updated_at = utcnow()

    def add_history(self, conversation_id: str, turns: Sequence[tuple[str, str]]) -> None:
        """Earlier turns a client sends along (OpenAI-style), stored as plain messages."""
        for role, text in turns:
            if role == "user":
                self.add_user_message(conversation_id, text, None, [])
            else:
                self.add_answer(conversation_id, AnswerRecord(content=text, finish_reason="import"))

    def add_answer(self, conversation_id: str, record: AnswerRecord) -> Message:
        return self._add(conversation_id, Message(role="assistant", **vars(record)))

    def _add(self, conversation_id: str, message: Message) -> Message:
        with self._sessions.begin() as s:
            conversation = s.get(Conversation, conversation_id)
            if conversation is None:
                raise ConversationNotFound(f"No conversation with id {conversation_id!r}.")
            last = s.scalar(
                select(func.max(Message.seq)).where(Message.conversation_id == conversation_id)
            )
            message.conversation_id = conversation_id
            message.seq = (last or 0) + 1
            conversation.updated_at = utcnow()
            s.add(message)
        return message

    def get_message(self, message_id: str, tenant_id: str | None = None) -> Message:
        """A message with its ratings; with tenant_id, only if that tenant owns it."""
        with self._sessions() as s:
            message = s.get(Message, message_id)
            if message is None or (
                tenant_id is not None and message.conversation.tenant_id != tenant_id
            ):
                raise MessageNotFound(f"No message with id {message_id!r}.")
            _ = message.ratings
            return message

    def question_for(self, answer: Message) -> str:
        """The customer message the answer replied to."""
        with self._sessions() as s:
            question = s.scalar(
                select(Message.content)
                .where(
                    Message.conversation_id == answer.conversation_id,
                    Message.seq < answer.seq,
                    Message.role == "user",
                )
                .order_by(Message.seq.desc())
                .limit(1)
            )
        return question or ""

    def rate(
        self, tenant_id: str, message_id: str, rating: RatingInput, widget_key: str | None = None
    ) -> Rating:
        with self._sessions.begin() as s:
            message = s.get(Message, message_id)
            if message is None or not _sees(message.conversation, tenant_id, widget_key):
                raise MessageNotFound(f"No message with id {message_id!r}.")
            if message.role != "assistant":
                raise InvalidRequest("Only answers (assistant messages) can be rated.")
            row = Rating(message_id=message_id, **vars(rating))
            s.add(row)
        return row


def _owned(
    s: Session, tenant_id: str, conversation_id: str, widget_key: str | None = None
) -> Conversation:
    conversation = s.get(Conversation, conversation_id)
    return _visible(conversation, conversation_id, tenant_id, widget_key)


def _visible(
    conversation: Conversation | None, wanted: str, tenant_id: str, widget_key: str | None
) -> Conversation:
    if conversation is None or not _sees(conversation, tenant_id, widget_key):
        raise ConversationNotFound(f"No conversation with id {wanted!r}.")
    return conversation


def _sees(conversation: Conversation, tenant_id: str, widget_key: str | None) -> bool:
    """A tenant's keys see its conversations; a widget key only those it started."""
    if conversation.tenant_id != tenant_id:
        return False
    return widget_key is None or conversation.api_key_id == widget_key


def _filtered(query: Select[Any], tenant_id: str, where: ConversationFilter) -> Select[Any]:
    query = query.where(Conversation.tenant_id == tenant_id)
    for column, value in (
        (Conversation.status, where.status),
        (Conversation.product, where.product),
        (Conversation.channel, where.channel),
        (Conversation.customer_ref, where.customer_ref),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.created_after is not None:
        query = query.where(Conversation.created_at >= where.created_after)
    if where.created_before is not None:
        query = query.where(Conversation.created_at < where.created_before)
    return query
