"""Request and response bodies of the chat API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from knowledge.catalog import HANDOFF_REASONS
from service.store.models import as_utc

Timestamp = Annotated[datetime, AfterValidator(as_utc)]


class ChatRequest(BaseModel):
    """A customer message; without conversation_id a new conversation starts."""

    conversation_id: str | None = Field(default=None, max_length=64)
    message: str = Field(description="The customer's message (1 to 4000 characters).")
    product: str | None = Field(default=None, max_length=100, description="Product id filter.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "message": "My router shows error E5, what do I do?",
                    "product": "halcyon-router-x1000",
                }
            ]
        }
    }

    @field_validator("message")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("message must not be empty")
        return text.strip()


class Source(BaseModel):
    """A numbered source the answer could cite."""

    number: int
    chunk_id: str
    title: str
    heading: str
    source: str
    product: str | None


class HandoffOut(BaseModel):
    """The conversation was handed to a human agent, and why."""

    reason: str = Field(
        description=f"{', '.join(HANDOFF_REASONS)} (a template's escalate_when condition), "
        "or requested (POST ./handoff)"
    )
    detail: str = ""


class ChatResponse(BaseModel):
    conversation_id: str
    message_id: str
    answer: str
    sources: list[Source]
    citations: list[int] = Field(description="Source numbers the answer cites, e.g. [1].")
    troubleshooting_template: str | None
    product: str | None
    finish_reason: str
    handoff: HandoffOut | None = Field(default=None, description="Set when a human takes over.")
    flags: list[str] = Field(default=[], description="Guardrail flags on the customer's message.")
    usage: dict[str, int]
    ttft_ms: float | None
    model_version: str | None = Field(
        default=None,
        description="The model version that wrote the answer (canary or active); null for the "
        "configured default and for the brand's fixed replies.",
    )
    adapter: str | None = Field(
        default=None, description="The LoRA adapter that wrote it; null: the base model."
    )
    replaced: bool = Field(
        default=False,
        description="The streamed `token` events are not the answer (the model copied its "
        "rules, or text already sent was cut): show `answer` in their place.",
    )
    cleaned: str | None = Field(
        default=None,
        description="Why the model's text was cut or replaced, as reason:rule, e.g. "
        "cut_debris:sources_list, cut_repeat:repeated_sentence, prompt_leak:rules_copy.",
    )


class RatingRequest(BaseModel):
    """A rating of an answer: good/bad, or a 1-5 score, or both."""

    rating: Literal["good", "bad"] | None = None
    score: int | None = Field(default=None, ge=1, le=5)
    by: Literal["customer", "agent"] = "customer"
    corrected_answer: str | None = Field(
        default=None, max_length=8000, description="The answer the agent would have given."
    )
    comment: str | None = Field(default=None, max_length=2000)
    tags: list[str] = Field(
        default=[], max_length=20, description="Free labels, e.g. wrong_product, outdated."
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"rating": "good", "score": 5, "by": "customer"},
                {
                    "rating": "bad",
                    "by": "agent",
                    "corrected_answer": "E5 means the WAN cable is unplugged: ... [1]",
                    "tags": ["wrong_error_code"],
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _something(self) -> RatingRequest:
        if self.rating is None and self.score is None:
            raise ValueError("give rating ('good' or 'bad') or score (1-5)")
        return self


class RatingResponse(BaseModel):
    id: str
    message_id: str
    rating: str | None
    score: int | None
    by: str
    corrected_answer: str | None = None
    tags: list[str] = []
    comment: str | None = None


class ProductOut(BaseModel):
    id: str
    name: str
