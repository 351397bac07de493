"""What a turn stores and returns: the answer record and the API response built from it."""

from __future__ import annotations

from knowledge.index import SearchHit
from service.chat.hygiene import Cleaned
from service.chat.schemas import ChatResponse, HandoffOut, Source
from service.chat.turn import Turn
from service.engines.base import Completion
from service.errors import TunedeskError
from service.prompting.builder import PROMPT_TEMPLATE_ID, PROMPT_TEMPLATE_VERSION, cited_numbers
from service.prompting.guardrails import Handoff
from service.store.repository import AnswerRecord


def answer_record(
    turn: Turn,
    answer: Cleaned,
    completion: Completion | None,
    ttft_ms: float | None,
    latency_ms: float,
    error: TunedeskError | None,
    raw: str = "",
) -> AnswerRecord:
    """Everything that produced this answer, stored beside it: when hygiene cut or replaced
    the model's text, that text too, and the rule in `flags`."""
    prompt, template = turn.prompt, turn.prompt.template
    verdict = answer.verdict
    return AnswerRecord(
        content=answer.text,
        raw_content=raw if verdict else None,
        flags=[f"{verdict.reason}:{verdict.rule}"] if verdict else [],
        product=turn.product,
        sources=[source(i, h).model_dump() for i, h in enumerate(prompt.sources, 1)],
        citations=[] if answer.replaced else cited_numbers(answer.text, len(prompt.sources)),
        prompt_template_id=None if turn.canned else PROMPT_TEMPLATE_ID,
        prompt_template_version=None if turn.canned else PROMPT_TEMPLATE_VERSION,
        troubleshooting_template_id=template.id if template else None,
        troubleshooting_template_version=template.version if template else None,
        model=None if turn.canned else turn.model,
        adapter=None if turn.canned else turn.adapter,
        prompt_tokens=completion.prompt_tokens if completion else None,
        completion_tokens=completion.completion_tokens if completion else None,
        ttft_ms=ttft_ms,
        latency_ms=latency_ms,
        finish_reason=finish_reason(turn, answer, completion, error),
        error=error.message if error else None,
        prompt=[{"role": m["role"], "content": m["content"]} for m in prompt.messages],
        example_ids=[e.id for e in prompt.examples],
        # a canned answer (hand-off, refusal) still counts against the version the
        # conversation is routed to, though no adapter wrote it
        model_version=turn.model_version,
    )


def finish_reason(
    turn: Turn, answer: Cleaned, completion: Completion | None, error: TunedeskError | None
) -> str:
    if turn.outcome is not None:
        return turn.outcome
    if answer.verdict is not None:
        return answer.verdict.reason
    if completion is not None:
        return completion.finish_reason
    return "error" if error is not None else "cancelled"


def response(
    turn: Turn, message_id: str, record: AnswerRecord, replaced: bool = False
) -> ChatResponse:
    return ChatResponse(
        conversation_id=turn.conversation_id,
        message_id=message_id,
        answer=record.content,
        sources=[Source(**s) for s in record.sources],
        citations=record.citations,
        troubleshooting_template=record.troubleshooting_template_id,
        product=turn.product,
        finish_reason=record.finish_reason or "stop",
        handoff=_handoff(turn.handoff),
        flags=turn.flags,
        usage={
            "prompt_tokens": record.prompt_tokens or 0,
            "completion_tokens": record.completion_tokens or 0,
        },
        ttft_ms=record.ttft_ms,
        model_version=record.model_version,
        adapter=record.adapter,
        replaced=replaced,
        cleaned=record.flags[0] if record.flags else None,
    )


def _handoff(handoff: Handoff | None) -> HandoffOut | None:
    return HandoffOut(reason=handoff.reason, detail=handoff.detail) if handoff else None


def source(number: int, hit: SearchHit) -> Source:
    return Source(
        number=number,
        chunk_id=hit.chunk_id,
        title=hit.title,
        heading=hit.heading,
        source=hit.source,
        product=hit.product,
    )
