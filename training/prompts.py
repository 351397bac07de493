"""The prompt an answer was generated from, so the model trains on what it will be served.

A recorded prompt (the transcript's `prompt`) is used verbatim. Otherwise the prompt is rebuilt
with the service's own PromptBuilder, configured as the service configures it, from the stored
pieces: the troubleshooting template by id,
the sources by chunk id, and the conversation's earlier messages as history. Anything that had
to be guessed (a template whose version moved on, a chunk found only by its heading) makes the
prompt `approximate`; anything missing makes it unavailable, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from knowledge.catalog import TroubleshootingTemplate
from knowledge.index import SearchHit
from service.engines.base import ChatMessage
from service.prompting.builder import PROMPT_TEMPLATE_ID, PROMPT_TEMPLATE_VERSION, PromptBuilder
from training.chunks import ChunkLookup
from training.transcripts import SourceRef, Transcript, TranscriptMessage

Provenance = Literal["recorded", "rebuilt", "approximate"]


class PromptUnavailable(Exception):
    """The prompt of an answer cannot be recovered; the message is the reason (a short code)."""


@dataclass(frozen=True)
class AnswerPrompt:
    """The messages an answer was generated from, and how sure we are of them."""

    messages: list[ChatMessage]
    provenance: Provenance
    notes: list[str] = field(default_factory=list)


class PromptRebuilder:
    """Recovers the prompt behind each assistant message of a transcript."""

    def __init__(
        self,
        builder: PromptBuilder,
        templates: Sequence[TroubleshootingTemplate],
        chunks: ChunkLookup | None,
        history_messages: int = 6,
    ) -> None:
        self._builder = builder
        self._templates = {t.id: t for t in templates}
        self._chunks = chunks
        self._history_messages = history_messages

    def prompt_for(self, transcript: Transcript, index: int) -> AnswerPrompt:
        """The prompt of transcript.messages[index], an assistant message."""
        answer = transcript.messages[index]
        if answer.prompt is not None:
            recorded: list[ChatMessage] = [
                {"role": m.role, "content": m.content} for m in answer.prompt
            ]
            return AnswerPrompt(recorded, "recorded")
        question = transcript.messages[index - 1] if index > 0 else None
        if question is None or question.role != "user":
            raise PromptUnavailable("no-question")
        notes = _layout_notes(answer)
        template = self._template(answer, notes)
        hits = self._hits(answer.sources, notes)
        history = _history(transcript.messages[: index - 1], self._history_messages)
        built = self._builder.build(question.content, hits, template, history)
        return AnswerPrompt(built.messages, "approximate" if notes else "rebuilt", notes)

    def _template(
        self, answer: TranscriptMessage, notes: list[str]
    ) -> TroubleshootingTemplate | None:
        template_id = answer.troubleshooting_template_id
        if template_id is None:
            return None
        template = self._templates.get(template_id)
        if template is None:
            raise PromptUnavailable("template-missing")
        stored = answer.troubleshooting_template_version
        if stored is not None and stored != template.version:
            notes.append(f"template {template_id} v{stored} is now v{template.version}")
        return template

    def _hits(self, sources: Sequence[SourceRef], notes: list[str]) -> list[SearchHit]:
        if not sources:
            return []
        if self._chunks is None:
            raise PromptUnavailable("no-chunk-lookup")
        ordered = sorted(sources, key=lambda s: s.number)
        found = self._chunks.by_ids([s.chunk_id for s in ordered])
        hits: list[SearchHit] = []
        for ref in ordered:
            hit = found.get(ref.chunk_id) or self._relocated(ref, notes)
            if hit is None:
                raise PromptUnavailable("chunk-missing")
            hits.append(hit)
        return hits

    def _relocated(self, ref: SourceRef, notes: list[str]) -> SearchHit | None:
        assert self._chunks is not None
        hit = self._chunks.by_location(ref.source, ref.heading)
        if hit is not None:
            notes.append(f"chunk {ref.chunk_id} found by heading {ref.heading!r}")
        return hit


def _layout_notes(answer: TranscriptMessage) -> list[str]:
    stored = (answer.prompt_template_id, answer.prompt_template_version)
    if stored == (None, None) or stored == (PROMPT_TEMPLATE_ID, PROMPT_TEMPLATE_VERSION):
        return []
    return [
        f"prompt layout {stored[0]} v{stored[1]} rebuilt as "
        f"{PROMPT_TEMPLATE_ID} v{PROMPT_TEMPLATE_VERSION}"
    ]


def _history(earlier: Sequence[TranscriptMessage], limit: int) -> list[ChatMessage]:
    """What the service puts in the prompt: the newest `limit` earlier messages, in order."""
    recent = earlier[-limit:] if limit else []
    return [{"role": m.role, "content": m.content} for m in recent]
