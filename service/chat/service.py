"""The chat service: one customer message in, a grounded, cited, stored answer out.

It knows nothing of HTTP. Everything that can be refused (bad product, unknown conversation,
busy engine) is refused in `start_turn` or before the first token, so callers can still answer
with a plain error status; after that, failures become an error event and the partial answer
is stored anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from knowledge.catalog import ProductCatalog
from knowledge.index import KnowledgeIndex, SearchHit
from service.chat.schemas import ChatRequest, ChatResponse, Source
from service.engines.base import ChatMessage, Completion, Engine, SamplingParams, TextDelta
from service.errors import InvalidRequest, TunedeskError, UnknownProduct
from service.metrics import Metrics
from service.prompting.builder import (
    PROMPT_TEMPLATE_ID,
    PROMPT_TEMPLATE_VERSION,
    BuiltPrompt,
    PromptBuilder,
    cited_numbers,
)
from service.prompting.selection import TemplateSelector
from service.store.repository import AnswerRecord, ConversationStore


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Failure:
    code: str
    message: str


@dataclass(frozen=True)
class Final:
    response: ChatResponse


ChatEvent = Token | Failure | Final


@dataclass(frozen=True)
class Turn:
    """A question accepted and stored, with its prompt ready for the engine."""

    conversation_id: str
    product: str | None
    prompt: BuiltPrompt
    received_at: float


@dataclass(frozen=True)
class ChatLimits:
    max_message_chars: int
    history_messages: int
    top_k: int
    sampling: SamplingParams
    adapter: str | None = None


class ChatService:
    def __init__(
        self,
        store: ConversationStore,
        index: KnowledgeIndex,
        engine: Engine,
        catalog: ProductCatalog,
        selector: TemplateSelector,
        builder: PromptBuilder,
        metrics: Metrics,
        limits: ChatLimits,
    ) -> None:
        self._store = store
        self._index = index
        self._engine = engine
        self._catalog = catalog
        self._selector = selector
        self._builder = builder
        self._metrics = metrics
        self._limits = limits

    async def start_turn(self, request: ChatRequest, channel: str = "api") -> Turn:
        """Validate, store the customer's message, retrieve and build the prompt."""
        received = time.perf_counter()
        self._check_length(request.message)
        conversation_id, product, history = await asyncio.to_thread(
            self._resolve_conversation, request, channel
        )
        await asyncio.to_thread(
            self._store.add_user_message, conversation_id, request.message, product
        )
        hits = await self._retrieve(request.message, product)
        template = self._selector.select(request.message, product)
        prompt = self._builder.build(request.message, hits, template, history)
        return Turn(conversation_id, product, prompt, received)

    def _check_length(self, message: str) -> None:
        limit = self._limits.max_message_chars
        if len(message) > limit:
            raise InvalidRequest(
                f"message is {len(message)} characters long; the limit is {limit}. "
                "Shorten it or split it into several messages."
            )

    def _resolve_conversation(
        self, request: ChatRequest, channel: str
    ) -> tuple[str, str | None, list[ChatMessage]]:
        product = self._product(request)
        if request.conversation_id is None:
            product = product or self._catalog.detect(request.message)
            return self._store.start_conversation(product, channel).id, product, []
        conversation = self._store.get_conversation(request.conversation_id)
        product = product or conversation.product or self._catalog.detect(request.message)
        past = self._store.history(conversation.id, self._limits.history_messages)
        history: list[ChatMessage] = [
            {"role": "assistant" if m.role == "assistant" else "user", "content": m.content}
            for m in past
        ]
        return conversation.id, product, history

    def _product(self, request: ChatRequest) -> str | None:
        if request.product is None or self._catalog.get(request.product):
            return request.product
        known = ", ".join(self._catalog.ids)
        raise UnknownProduct(f"Unknown product {request.product!r}. Known products: {known}.")

    async def _retrieve(self, question: str, product: str | None) -> list[SearchHit]:
        started = time.perf_counter()
        hits = await asyncio.to_thread(self._index.search, question, product, self._limits.top_k)
        self._metrics.retrieval_seconds.observe(time.perf_counter() - started)
        return hits

    async def stream(self, turn: Turn) -> AsyncGenerator[ChatEvent]:
        """Token events, then one Final (preceded by a Failure if generation broke off)."""
        pieces: list[str] = []
        completion: Completion | None = None
        error: TunedeskError | None = None
        first_token_at: float | None = None
        try:
            stream = self._engine.stream(
                turn.prompt.messages, self._limits.sampling, self._limits.adapter
            )
            async for event in stream:
                if isinstance(event, TextDelta):
                    first_token_at = first_token_at or time.perf_counter()
                    pieces.append(event.text)
                    yield Token(event.text)
                else:
                    completion = event
        except TunedeskError as exc:
            error = exc
        finally:  # also on cancellation: what was generated is stored
            record = self._record(turn, "".join(pieces), completion, first_token_at, error)
            saved = await asyncio.shield(
                asyncio.to_thread(self._store.add_answer, turn.conversation_id, record)
            )
        if error is not None and not pieces:
            raise error  # nothing streamed yet: the caller answers with a plain error status
        if error is not None:
            yield Failure(error.code, error.message)
        yield Final(self._response(turn, saved.id, record))

    def _record(
        self,
        turn: Turn,
        answer: str,
        completion: Completion | None,
        first_token_at: float | None,
        error: TunedeskError | None,
    ) -> AnswerRecord:
        now = time.perf_counter()
        template = turn.prompt.template
        ttft = (first_token_at - turn.received_at) * 1000 if first_token_at else None
        self._observe(completion, ttft)
        return AnswerRecord(
            content=answer.strip(),
            product=turn.product,
            sources=[_source(i, h).model_dump() for i, h in enumerate(turn.prompt.sources, 1)],
            citations=cited_numbers(answer, len(turn.prompt.sources)),
            prompt_template_id=PROMPT_TEMPLATE_ID,
            prompt_template_version=PROMPT_TEMPLATE_VERSION,
            troubleshooting_template_id=template.id if template else None,
            troubleshooting_template_version=template.version if template else None,
            model=self._engine.model_name,
            adapter=self._limits.adapter,
            prompt_tokens=completion.prompt_tokens if completion else None,
            completion_tokens=completion.completion_tokens if completion else None,
            ttft_ms=ttft,
            latency_ms=(now - turn.received_at) * 1000,
            finish_reason=_finish_reason(completion, error),
            error=error.message if error else None,
        )

    def _observe(self, completion: Completion | None, ttft_ms: float | None) -> None:
        if ttft_ms is not None:
            self._metrics.ttft_seconds.observe(ttft_ms / 1000)
        if completion is not None:
            self._metrics.completion_tokens.inc(completion.completion_tokens)
            self._metrics.prompt_tokens.inc(completion.prompt_tokens)

    def _response(self, turn: Turn, message_id: str, record: AnswerRecord) -> ChatResponse:
        return ChatResponse(
            conversation_id=turn.conversation_id,
            message_id=message_id,
            answer=record.content,
            sources=[Source(**s) for s in record.sources],
            citations=record.citations,
            troubleshooting_template=record.troubleshooting_template_id,
            product=turn.product,
            finish_reason=record.finish_reason or "stop",
            usage={
                "prompt_tokens": record.prompt_tokens or 0,
                "completion_tokens": record.completion_tokens or 0,
            },
            ttft_ms=record.ttft_ms,
        )

    async def answer(self, turn: Turn) -> ChatResponse:
        """The whole answer at once (the non-streaming API)."""
        final: ChatResponse | None = None
        async for event in self.stream(turn):
            if isinstance(event, Final):
                final = event.response
        assert final is not None
        return final


def _finish_reason(completion: Completion | None, error: TunedeskError | None) -> str:
    if completion is not None:
        return completion.finish_reason
    return "error" if error is not None else "cancelled"


def _source(number: int, hit: SearchHit) -> Source:
    return Source(
        number=number,
        chunk_id=hit.chunk_id,
        title=hit.title,
        heading=hit.heading,
        source=hit.source,
        product=hit.product,
    )
