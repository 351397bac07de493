"""Rated transcripts as JSONL in the `tunedesk.transcript/v1` format that `tunedesk dataset
build --transcripts` reads (training/transcripts.py): agents' corrections are what retrains
the model. Ratings carry who gave them and when, and their tags, besides the fields the
builder reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from service.console.queue import QueueFilter, answers
from service.store.models import Agent, AgentRating, Conversation, Message, Rating

SCHEMA = "tunedesk.transcript/v1"
ANSWER_FIELDS = (
    "prompt_template_id",
    "prompt_template_version",
    "troubleshooting_template_id",
    "troubleshooting_template_version",
    "model",
    "adapter",
    "model_version",
    "error",
    "finish_reason",
)


def export_lines(
    sessions: sessionmaker[Session], tenant_id: str, where: QueueFilter
) -> Iterator[str]:
    """One JSON line per conversation that has a rated answer matching the filter."""
    rated = exists().where(Rating.message_id == Message.id)
    matching = answers(tenant_id, where).where(rated).with_only_columns(Message.conversation_id)
    query = (
        select(Conversation)
        .where(Conversation.id.in_(matching.distinct()))
        .order_by(Conversation.created_at, Conversation.id)
        .options(selectinload(Conversation.messages).selectinload(Message.ratings))
    )
    with sessions() as s:
        rows = s.execute(
            select(AgentRating.rating_id, Agent.email)
            .join(Agent, Agent.id == AgentRating.agent_id)
            .where(AgentRating.tenant_id == tenant_id)
        )
        authors = {rating_id: email for rating_id, email in rows}
        for conversation in s.scalars(query).all():
            yield json.dumps(transcript(conversation, authors), ensure_ascii=False) + "\n"


def transcript(conversation: Conversation, authors: dict[str, str]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "conversation_id": conversation.id,
        "product": conversation.product,
        "channel": conversation.channel,
        "messages": [_message(m, authors) for m in conversation.messages],
    }


def _message(message: Message, authors: dict[str, str]) -> dict[str, Any]:
    if message.role != "assistant":
        return {
            "id": message.id,
            "role": "user",
            "content": message.content,
            "product": message.product,
        }
    return {
        "id": message.id,
        "role": "assistant",
        "content": message.content,
        "product": message.product,
        "prompt": message.prompt or None,
        "sources": message.sources or [],
        "citations": message.citations or [],
        **{name: getattr(message, name) for name in ANSWER_FIELDS},
        "created_at": message.created_at.isoformat(),
        "ratings": [
            _rating(r, authors) for r in sorted(message.ratings, key=lambda r: r.created_at)
        ],
    }


def _rating(rating: Rating, authors: dict[str, str]) -> dict[str, Any]:
    return {
        "id": rating.id,
        "rater": "agent" if rating.rater == "agent" else "customer",
        "label": rating.label if rating.label in ("good", "bad") else None,
        "score": rating.score,
        "corrected_answer": rating.corrected_answer,
        "comment": rating.comment,
        "tags": rating.tags or [],
        "by": authors.get(rating.id),
        "created_at": rating.created_at.isoformat(),
    }
