"""Rated transcripts: the exchange format between the store, exported files and datasets.

One JSON object per line is one conversation, its messages in order. Assistant messages carry
what produced them (the same fields as the store's `messages` table) and their ratings. The
optional `prompt` of an assistant message is the exact list of chat messages the model saw;
when it is absent the dataset builder rebuilds it from the stored pieces.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA = "tunedesk.transcript/v1"


class TranscriptError(Exception):
    """A transcripts file that cannot be read; the message names the line and the field."""


class PromptMessage(BaseModel):
    """One chat message of a recorded prompt."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class SourceRef(BaseModel):
    """A numbered source of an answer, as stored: which chunk of which document."""

    number: int = Field(ge=1)
    chunk_id: str
    title: str = ""
    heading: str = ""
    source: str = ""
    product: str | None = None


class RatingRecord(BaseModel):
    """A rating of one answer, by the customer or an agent."""

    id: str
    rater: Literal["customer", "agent"]
    label: Literal["good", "bad"] | None = None
    score: int | None = Field(default=None, ge=1, le=5)
    corrected_answer: str | None = None
    comment: str | None = None

    @property
    def verdict(self) -> str | None:
        """good / bad from the label, else from the score (4-5 good, 1-2 bad, 3 neither)."""
        if self.label is not None:
            return self.label
        if self.score is None or self.score == 3:
            return None
        return "good" if self.score >= 4 else "bad"


class TranscriptMessage(BaseModel):
    """A customer or assistant message; assistant ones say what produced them."""

    id: str
    role: Literal["user", "assistant"]
    content: str
    product: str | None = None
    prompt: list[PromptMessage] | None = None
    sources: list[SourceRef] = []
    citations: list[int] = []
    prompt_template_id: str | None = None
    prompt_template_version: int | None = None
    troubleshooting_template_id: str | None = None
    troubleshooting_template_version: int | None = None
    model: str | None = None
    adapter: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    ratings: list[RatingRecord] = []

    @model_validator(mode="after")
    def _only_answers_are_rated(self) -> TranscriptMessage:
        if self.role == "user" and (self.ratings or self.prompt or self.sources):
            raise ValueError("only assistant messages carry ratings, prompts and sources")
        return self


class Transcript(BaseModel):
    """One conversation with its messages in order."""

    schema_: str = Field(default=SCHEMA, alias="schema")
    conversation_id: str
    product: str | None = None
    channel: str = "api"
    messages: list[TranscriptMessage] = Field(min_length=1)

    model_config = ConfigDict(populate_by_name=True)

    @model_validator(mode="after")
    def _known_schema(self) -> Transcript:
        if self.schema_ != SCHEMA:
            raise ValueError(f"unknown schema {self.schema_!r}; expected {SCHEMA!r}")
        return self

    def to_json(self) -> str:
        """One JSONL line: the schema tag first, then every field that is not a default."""
        data = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return json.dumps({"schema": SCHEMA, **data}, ensure_ascii=False)


def rated_answer(
    message_id: str,
    content: str,
    product: str | None,
    prompt: Sequence[Mapping[str, object]],
    sources: list[SourceRef],
    citations: list[int],
    rating: RatingRecord,
) -> TranscriptMessage:
    """An assistant message made outside a chat (synthesized, or from a public set): the exact
    prompt it answers, its numbered sources and citations, and the rating that makes it an
    example."""
    return TranscriptMessage(
        id=message_id,
        role="assistant",
        content=content,
        product=product,
        prompt=[PromptMessage.model_validate(dict(m)) for m in prompt],
        sources=sources,
        citations=citations,
        ratings=[rating],
    )


def read_transcripts(path: Path) -> Iterator[Transcript]:
    """Transcripts from a JSONL file; an invalid line raises with its number and field."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield parse_line(line, f"{path}:{number}")


def parse_line(line: str, where: str) -> Transcript:
    try:
        return Transcript.model_validate(json.loads(line))
    except json.JSONDecodeError as exc:
        raise TranscriptError(f"{where}: not JSON: {exc}") from exc
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise TranscriptError(f"{where}: {fields}") from exc


def write_transcripts(path: Path, transcripts: Iterable[Transcript]) -> int:
    """Write transcripts as JSONL; returns how many were written."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for transcript in transcripts:
            out.write(transcript.to_json() + "\n")
            count += 1
    return count
