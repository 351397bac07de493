"""Read rated conversations out of the service's database as transcripts.

Only conversations with at least one rated answer are read: unrated answers teach nothing.
The database is opened read-only in spirit: nothing is written and no migration is run.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service.db import make_engine, session_factory
from service.store.models import Conversation, Message, Rating
from training.transcripts import (
    PromptMessage,
    RatingRecord,
    SourceRef,
    Transcript,
    TranscriptMessage,
)


def transcripts_from_database(url: str, batch: int = 200) -> Iterator[Transcript]:
    """Every conversation with a rated answer, oldest first, as transcripts."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            yield from _rated_conversations(session, batch)
    finally:
        engine.dispose()


def _rated_conversations(session: Session, batch: int) -> Iterator[Transcript]:
    rated = select(Message.conversation_id).join(Rating, Rating.message_id == Message.id).distinct()
    query = (
        select(Conversation)
        .where(Conversation.id.in_(rated))
        .order_by(Conversation.created_at, Conversation.id)
        .options(selectinload(Conversation.messages).selectinload(Message.ratings))
        .execution_options(yield_per=batch)
    )
    for conversation in session.scalars(query):
        yield to_transcript(conversation)


def to_transcript(conversation: Conversation) -> Transcript:
    """A stored conversation (messages and ratings loaded) as a transcript."""
    return Transcript(
        conversation_id=conversation.id,
        product=conversation.product,
        channel=conversation.channel,
        messages=[_message(m) for m in conversation.messages],
    )


def _message(message: Message) -> TranscriptMessage:
    role = "assistant" if message.role == "assistant" else "user"
    if role == "user":
        return TranscriptMessage(
            id=message.id, role="user", content=message.content, product=message.product
        )
    return TranscriptMessage(
        id=message.id,
        role="assistant",
        content=message.content,
        product=message.product,
        prompt=[PromptMessage.model_validate(m) for m in message.prompt]
        if message.prompt
        else None,
        sources=[SourceRef.model_validate(s) for s in message.sources or []],
        citations=list(message.citations or []),
        prompt_template_id=message.prompt_template_id,
        prompt_template_version=message.prompt_template_version,
        troubleshooting_template_id=message.troubleshooting_template_id,
        troubleshooting_template_version=message.troubleshooting_template_version,
        model=message.model,
        adapter=message.adapter,
        error=message.error,
        finish_reason=message.finish_reason,
        ratings=[_rating(r) for r in sorted(message.ratings, key=lambda r: r.created_at)],
    )


def _rating(rating: Rating) -> RatingRecord:
    return RatingRecord(
        id=rating.id,
        rater="agent" if rating.rater == "agent" else "customer",
        label=rating.label if rating.label in ("good", "bad") else None,  # type: ignore[arg-type]
        score=rating.score,
        corrected_answer=rating.corrected_answer,
        comment=rating.comment,
    )
