"""Request and response bodies of the conversations API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from service.chat.schemas import Source, Timestamp
from service.store.models import Conversation, Message, Rating

Status = Literal["open", "handoff", "resolved"]
Channel = Literal["widget", "api", "console"]


class ConversationCreate(BaseModel):
    """A new conversation; its first message is posted to /messages."""

    product: str | None = Field(default=None, max_length=100, description="Product id")
    customer_ref: str | None = Field(
        default=None, max_length=200, description="Your id for the customer (ticket, user)"
    )
    channel: Literal["api", "console"] = "api"

    model_config = {
        "json_schema_extra": {
            "examples": [{"product": "halcyon-router-x1000", "customer_ref": "ticket-4812"}]
        }
    }


class MessageCreate(BaseModel):
    """A customer message in an existing conversation."""

    message: str = Field(description="The customer's message (1 to 4000 characters).")
    product: str | None = Field(default=None, max_length=100)

    model_config = {"json_schema_extra": {"examples": [{"message": "The light is red, E5."}]}}

    @field_validator("message")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("message must not be empty")
        return text.strip()


class HandoffCreate(BaseModel):
    reason: str = Field(default="requested", min_length=1, max_length=200)


class RatingOut(BaseModel):
    id: str
    by: str
    rating: str | None
    score: int | None
    corrected_answer: str | None
    tags: list[str]
    comment: str | None
    created_at: Timestamp

    @classmethod
    def of(cls, row: Rating) -> RatingOut:
        return cls(
            id=row.id,
            by=row.rater,
            rating=row.label,
            score=row.score,
            corrected_answer=row.corrected_answer,
            tags=row.tags or [],
            comment=row.comment,
            created_at=row.created_at,
        )


class MessageOut(BaseModel):
    """A message; an answer also says what produced it and how long it took."""

    id: str
    role: str
    content: str
    created_at: Timestamp
    product: str | None
    sources: list[Source] = []
    citations: list[int] = []
    troubleshooting_template: str | None = None
    model: str | None = None
    adapter: str | None = None
    model_version: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    finish_reason: str | None = None
    flags: list[str] = []
    ratings: list[RatingOut] = []

    @classmethod
    def of(cls, row: Message) -> MessageOut:
        fields: dict[str, Any] = {
            name: getattr(row, name) for name in cls.model_fields if hasattr(row, name)
        }
        fields.update(
            sources=[Source(**s) for s in row.sources or []],
            citations=row.citations or [],
            troubleshooting_template=row.troubleshooting_template_id,
            flags=row.flags or [],
            ratings=[RatingOut.of(r) for r in row.ratings],
        )
        return cls(**fields)


class ConversationOut(BaseModel):
    id: str
    status: Status
    product: str | None
    channel: str
    customer_ref: str | None
    handoff_reason: str | None
    created_at: Timestamp
    updated_at: Timestamp
    closed_at: Timestamp | None

    @classmethod
    def of(cls, row: Conversation) -> ConversationOut:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]

    @classmethod
    def with_messages(cls, row: Conversation, messages: list[MessageOut]) -> ConversationDetail:
        return cls(**ConversationOut.of(row).model_dump(), messages=messages)


class ConversationPage(BaseModel):
    """One page, newest first; pass next_cursor as `cursor` for the next page."""

    data: list[ConversationOut]
    next_cursor: str | None
