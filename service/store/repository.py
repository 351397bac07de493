"""The conversation store: the only code that reads and writes conversations, messages, ratings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.errors import ConversationNotFound, InvalidRequest, MessageNotFound
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


@dataclass
class RatingInput:
    """A rating of one assistant message, by a customer or an agent."""

    rater: str
    label: str | None = None
    score: int | None = None
    corrected_answer: str | None = None
    comment: str | None = None


class ConversationStore:
    """Synchronous store; async callers run it in a worker thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def start_conversation(self, product: str | None, channel: str = "api") -> Conversation:
        with self._sessions.begin() as s:
            conversation = Conversation(product=product, channel=channel)
            s.add(conversation)
        return conversation

    def get_conversation(self, conversation_id: str) -> Conversation:
        with self._sessions() as s:
            conversation = s.get(Conversation, conversation_id)
            if conversation is None:
                raise ConversationNotFound(f"No conversation with id {conversation_id!r}.")
            _ = conversation.messages  # load while the session is open
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

    def mark_handoff(self, conversation_id: str, reason: str) -> None:
        """Flag the conversation for a human; the reason says which trigger fired."""
        with self._sessions.begin() as s:
            conversation = s.get(Conversation, conversation_id)
            if conversation is None:
                raise ConversationNotFound(f"No conversation with id {conversation_id!r}.")
            conversation.status = "handoff"
            conversation.handoff_reason = reason
            conversation.updated_at = utcnow()

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

    def get_message(self, message_id: str) -> Message:
        with self._sessions() as s:
            message = s.get(Message, message_id)
            if message is None:
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

    def rate(self, message_id: str, rating: RatingInput) -> Rating:
        with self._sessions.begin() as s:
            message = s.get(Message, message_id)
            if message is None:
                raise MessageNotFound(f"No message with id {message_id!r}.")
            if message.role != "assistant":
                raise InvalidRequest("Only answers (assistant messages) can be rated.")
            row = Rating(message_id=message_id, **vars(rating))
            s.add(row)
        return row
