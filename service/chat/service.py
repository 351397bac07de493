"""The chat service: one customer message in, a grounded, cited, stored answer out.

It knows nothing of HTTP. Everything that can be refused (bad product, unknown conversation,
busy engine) is refused in `start_turn` or before the first token, so callers can still answer
with a plain error status; after that, failures become an error event and the partial answer
is stored anyway. A hand-off to a human is answered without the model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Protocol

from knowledge.catalog import ProductCatalog, SystemPrompt
from knowledge.index import KnowledgeIndex, SearchHit
from service.chat.answering import Answering
from service.chat.hygiene import AnswerGuard, Hygiene
from service.chat.records import answer_record, response
from service.chat.schemas import ChatRequest, ChatResponse
from service.chat.turn import Caller, Turn
from service.engines.base import ChatMessage, Completion, Engine, SamplingParams, TextDelta
from service.errors import (
    AdapterNotFound,
    Conflict,
    EngineBusy,
    InvalidRequest,
    ShuttingDown,
    TunedeskError,
    UnknownProduct,
)
from service.events import EventBus
from service.metrics import Metrics, version_label
from service.prompting.builder import BuiltPrompt, PromptBuilder
from service.prompting.examples import ExampleStore
from service.prompting.guardrails import Guardrails, Handoff
from service.prompting.scope import Scope, ScopeGuard
from service.prompting.selection import TemplateSelector
from service.store.repository import AnswerRecord, ConversationStore

SHUTDOWN_MESSAGE = "The server is restarting and cut this answer short; ask again for all of it."


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
class ChatLimits:
    max_message_chars: int
    history_messages: int
    top_k: int
    sampling: SamplingParams
    adapter: str | None = None
    max_examples: int = 2
    example_similarity: float = 0.75


class VersionChooser(Protocol):
    """Which model version (and its adapter) answers a tenant's conversation."""

    def choose(self, tenant_id: str, conversation_id: str) -> tuple[str | None, str | None]:
        """(model version name or None, adapter name or None)."""
        ...


@dataclass(frozen=True)
class FixedVersion:
    """Every conversation gets the configured adapter (or the base model)."""

    adapter: str | None

    def choose(self, tenant_id: str, conversation_id: str) -> tuple[str | None, str | None]:
        return None, self.adapter


class Indexes(Protocol):
    """Each tenant's knowledge base."""

    def for_tenant(self, tenant_id: str) -> KnowledgeIndex: ...


@dataclass(frozen=True)
class PromptLayer:
    """The parts that turn a question into a prompt, or into a hand-off."""

    system: SystemPrompt
    selector: TemplateSelector
    builder: PromptBuilder
    guardrails: Guardrails
    examples: ExampleStore
    scope: ScopeGuard


@dataclass(frozen=True)
class _Context:
    conversation_id: str
    product: str | None
    history: list[ChatMessage]
    caller: Caller


def offered_product(catalog: ProductCatalog, product: str | None, caller: Caller) -> str | None:
    """The product asked about, if it is one this tenant offers."""
    offered = [p for p in catalog.ids if caller.products is None or p in caller.products]
    if product is None or product in offered:
        return product
    raise UnknownProduct(f"Unknown product {product!r}. Known products: {', '.join(offered)}.")


class ChatService:
    def __init__(
        self,
        store: ConversationStore,
        indexes: Indexes,
        engine: Engine,
        catalog: ProductCatalog,
        prompting: PromptLayer,
        metrics: Metrics,
        limits: ChatLimits,
        events: EventBus,
        versions: VersionChooser | None = None,
        load_adapter: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        # loads a chosen adapter the engine does not have (another replica published it, or
        # the vLLM server restarted); None: such an answer fails with adapter_not_found
        self._load_adapter = load_adapter
        self._indexes = indexes
        self._bus = events
        self._versions = versions or FixedVersion(limits.adapter)
        self._engine = engine
        self._catalog = catalog
        self._prompting = prompting
        self._metrics = metrics
        self._limits = limits
        self._hygiene = Hygiene(prompting.system)
        self._stops = self._hygiene.stop_strings()

    async def start_turn(
        self,
        request: ChatRequest,
        caller: Caller | None = None,
        sampling: SamplingParams | None = None,
    ) -> Turn:
        """Validate, store the customer's message, then hand off or build the prompt.
        `sampling` (from `self.sampling(...)`) is this request's own; None: the configured."""
        received = time.perf_counter()
        self._check_length(request.message)
        caller = caller or Caller()
        context = await asyncio.to_thread(self._resolve_conversation, request, caller)
        guardrails = self._prompting.guardrails
        flags = guardrails.injection_flags(request.message)
        question = await asyncio.to_thread(
            self._store.add_user_message,
            context.conversation_id,
            request.message,
            context.product,
            flags,
        )
        asked_before = [m["content"] for m in context.history if m["role"] == "user"]
        handoff = await asyncio.to_thread(guardrails.handoff, request.message, asked_before)
        if handoff is not None:
            return await self._handoff_turn(context, handoff, flags, received)
        prompt = await self._plan(request.message, context)
        escalation = guardrails.escalation(prompt.template, request.message, asked_before)
        if escalation is not None:
            return await self._handoff_turn(context, escalation, flags, received)
        scope = await asyncio.to_thread(self._scope, request.message, context, prompt)
        if scope != "in_scope":
            return self._canned_turn(context, scope, flags, received)
        version, adapter = self._versions.choose(caller.tenant_id, context.conversation_id)
        return Turn(
            context.conversation_id,
            context.product,
            prompt,
            received,
            self._engine.model_name,
            adapter,
            caller=caller,
            model_version=version,
            flags=flags,
            sampling=sampling,
            question_id=question.id,
            opened_conversation=request.conversation_id is None,
        )

    async def preview(
        self, request: ChatRequest, caller: Caller | None = None
    ) -> tuple[BuiltPrompt, Handoff | None, list[str]]:
        """The prompt this message would get now, the hand-off it would trigger; stores nothing."""
        self._check_length(request.message)
        context = await asyncio.to_thread(
            self._resolve_conversation, request, caller or Caller(), False
        )
        guardrails = self._prompting.guardrails
        asked_before = [m["content"] for m in context.history if m["role"] == "user"]
        handoff = await asyncio.to_thread(guardrails.handoff, request.message, asked_before)
        prompt = await self._plan(request.message, context)
        handoff = handoff or guardrails.escalation(prompt.template, request.message, asked_before)
        return prompt, handoff, guardrails.injection_flags(request.message)

    async def _plan(self, question: str, context: _Context) -> BuiltPrompt:
        hits = await self._retrieve(question, context)
        template = self._prompting.selector.select(question, context.product)
        examples = await asyncio.to_thread(
            self._prompting.examples.similar,
            question,
            context.product,
            self._limits.max_examples,
            self._limits.example_similarity,
            context.caller.tenant_id,
        )
        return self._prompting.builder.build(question, hits, template, context.history, examples)

    def _scope(self, question: str, context: _Context, prompt: BuiltPrompt) -> Scope:
        return self._prompting.scope.judge(
            question, prompt.sources, context.product, prompt.template is not None, context.history
        )

    def _canned_turn(
        self, context: _Context, scope: Scope, flags: list[str], received: float
    ) -> Turn:
        system = self._prompting.system
        reply = (
            system.out_of_scope_reply if scope == "out_of_scope" else system.low_confidence_reply
        )
        self._metrics.guardrails.labels(context.caller.tenant_id, scope).inc()
        return self._without_model(context, reply, scope, flags, received)

    async def _handoff_turn(
        self, context: _Context, handoff: Handoff, flags: list[str], received: float
    ) -> Turn:
        await asyncio.to_thread(self._store.mark_handoff, context.conversation_id, handoff.reason)
        caller = context.caller
        reply = self._prompting.system.handoff_reply_for(handoff.reason, handoff.detail)
        turn = self._without_model(context, reply, "handoff", flags, received, handoff)
        version = version_label(turn.model_version, turn.adapter)
        self._metrics.handoffs.labels(
            caller.tenant_id, context.product or "", version, caller.channel, handoff.reason
        ).inc()
        await self._bus.publish(
            caller.tenant_id,
            "conversation.handoff",
            {
                "conversation_id": context.conversation_id,
                "reason": handoff.reason,
                "detail": handoff.detail,
                "product": context.product,
                "channel": caller.channel,
                "customer_ref": caller.customer_ref,
            },
        )
        return turn

    def _without_model(
        self,
        context: _Context,
        reply: str,
        outcome: str,
        flags: list[str],
        received: float,
        handoff: Handoff | None = None,
    ) -> Turn:
        """A turn answered with one of the brand's fixed texts instead of the model, under the
        model version the conversation is routed to (so hand-offs count against it)."""
        empty = self._prompting.builder.empty()
        version, adapter = self._versions.choose(context.caller.tenant_id, context.conversation_id)
        return Turn(
            context.conversation_id,
            context.product,
            empty,
            received,
            self._engine.model_name,
            adapter,
            caller=context.caller,
            model_version=version,
            handoff=handoff,
            canned=reply,
            outcome=outcome,
            flags=flags,
        )

    def _check_length(self, message: str) -> None:
        limit = self._limits.max_message_chars
        if len(message) > limit:
            raise InvalidRequest(
                f"message is {len(message)} characters long; the limit is {limit}. "
                "Shorten it or split it into several messages."
            )

    def _resolve_conversation(
        self, request: ChatRequest, caller: Caller, create: bool = True
    ) -> _Context:
        product = self._product(request.product, caller)
        if request.conversation_id is None:
            product = product or self._catalog.detect(request.message)
            new_id = ""
            if create:
                new_id = self._store.start_conversation(
                    caller.tenant_id,
                    product,
                    caller.channel,
                    caller.customer_ref,
                    caller.widget_key,
                ).id
            return _Context(new_id, product, [], caller)
        conversation = self._store.get_conversation(
            caller.tenant_id, request.conversation_id, caller.widget_key
        )
        if conversation.status == "resolved":
            raise Conflict(f"Conversation {conversation.id} is resolved; start a new conversation.")
        product = product or conversation.product or self._catalog.detect(request.message)
        past = self._store.history(conversation.id, self._limits.history_messages)
        history: list[ChatMessage] = [
            {"role": "assistant" if m.role == "assistant" else "user", "content": m.content}
            for m in past
        ]
        return _Context(conversation.id, product, history, caller)

    def _product(self, product: str | None, caller: Caller) -> str | None:
        return offered_product(self._catalog, product, caller)

    async def _retrieve(self, question: str, context: _Context) -> list[SearchHit]:
        """Hybrid search; the conversation so far disambiguates follow-up questions."""
        started = time.perf_counter()
        index = self._indexes.for_tenant(context.caller.tenant_id)
        hits = await asyncio.to_thread(
            index.search, question, context.product, self._limits.top_k, context.history
        )
        self._metrics.retrieval_seconds.labels(
            context.caller.tenant_id, context.product or ""
        ).observe(time.perf_counter() - started)
        return hits

    async def stream(
        self, turn: Turn, cutoff: asyncio.Event | None = None
    ) -> AsyncGenerator[ChatEvent]:
        """Token events, then one Final (preceded by a Failure if generation broke off).

        Hygiene judges the text as it streams: at debris or a repeat the engine stream is
        closed (the generation stops) and the answer ends there; a leak of the rules is
        replaced, and the Final says so (`replaced`). Once `cutoff` is set (the server is
        stopping and its grace period is over) generation stops there too, as a
        `shutting_down` failure: the client can tell the answer was cut short."""
        answer = Answering(None if turn.canned is not None else self._hygiene_for(turn))
        error: TunedeskError | None = None
        try:
            async with aclosing(_until(self._events(turn), cutoff)) as events:
                async for event in events:
                    if text := answer.take(event):
                        yield Token(text)
                    if answer.cut:
                        break  # leaving the block closes the engine stream: generation stops
            if rest := answer.finish():
                yield Token(rest)
        except TunedeskError as exc:
            error = exc
        finally:  # also on cancellation: what was generated is stored
            answer.finish()
            if isinstance(error, EngineBusy) and not answer.raw:
                await asyncio.shield(asyncio.to_thread(self._withdraw, turn))
                raise error  # refused before it started: a retry is the first try again
            record = self._record(turn, answer, error)
            self._observe(turn, record, answer.usage(turn), answer.cleaned().replaced)
            saved = await asyncio.shield(
                asyncio.to_thread(self._store.add_answer, turn.conversation_id, record)
            )
        if error is not None and not answer.raw:
            raise error  # nothing streamed yet: the caller answers with a plain error status
        if error is not None:
            yield Failure(error.code, error.message)
        yield Final(response(turn, saved.id, record, answer.retracted))

    def _withdraw(self, turn: Turn) -> None:
        if turn.question_id is not None:
            self._store.withdraw_question(
                turn.conversation_id, turn.question_id, turn.opened_conversation
            )

    def _hygiene_for(self, turn: Turn) -> AnswerGuard:
        question = turn.prompt.messages[-1]["content"] if turn.prompt.messages else ""
        return self._hygiene.guard([hit.text for hit in turn.prompt.sources], question)

    def _record(self, turn: Turn, answer: Answering, error: TunedeskError | None) -> AnswerRecord:
        ttft = (answer.first_token_at - turn.received_at) * 1000 if answer.first_token_at else None
        latency = (time.perf_counter() - turn.received_at) * 1000
        usage = answer.usage(turn)
        return answer_record(turn, answer.cleaned(), usage, ttft, latency, error, answer.raw)

    def sampling(self, max_tokens: int | None, temperature: float | None) -> SamplingParams:
        """The configured sampling with a request's own length and temperature: max_tokens
        above the configured cap is clamped to it (the answer then ends with `length`)."""
        configured = self._limits.sampling
        return replace(
            configured,
            max_tokens=min(max_tokens or configured.max_tokens, configured.max_tokens),
            temperature=configured.temperature if temperature is None else temperature,
        )

    async def _events(self, turn: Turn) -> AsyncGenerator[TextDelta | Completion]:
        if turn.canned is not None:
            yield TextDelta(turn.canned)
            return
        params = replace(turn.sampling or self._limits.sampling, stop=self._stops)
        started = False
        try:
            async with aclosing(
                self._engine.stream(turn.prompt.messages, params, turn.adapter)
            ) as s:
                async for event in s:
                    started = True
                    yield event
        except AdapterNotFound:
            if started or turn.adapter is None or self._load_adapter is None:
                raise
            await self._load_adapter(turn.adapter)  # then once more, with the adapter loaded
            async with aclosing(
                self._engine.stream(turn.prompt.messages, params, turn.adapter)
            ) as s:
                async for event in s:
                    yield event

    def _observe(
        self,
        turn: Turn,
        record: AnswerRecord,
        completion: Completion | None,
        replaced: bool = False,
    ) -> None:
        version = version_label(turn.model_version, turn.adapter)
        labels = (turn.caller.tenant_id, turn.product or "", version, turn.caller.channel)
        self._metrics.answers.labels(*labels, record.finish_reason or "stop").inc()
        for flag in record.flags:
            reason, rule = flag.split(":", 1)
            where = (turn.caller.tenant_id, turn.product or "", version)
            self._metrics.cleaned_answers.labels(*where, reason, rule, str(replaced).lower()).inc()
        if record.ttft_ms is not None and turn.canned is None:
            self._metrics.ttft_seconds.labels(*labels).observe(record.ttft_ms / 1000)
        if completion is not None:
            self._metrics.completion_tokens.labels(*labels).inc(completion.completion_tokens)
            self._metrics.prompt_tokens.labels(*labels).inc(completion.prompt_tokens)

    async def answer(self, turn: Turn) -> ChatResponse:
        """The whole answer at once (the non-streaming API)."""
        final: ChatResponse | None = None
        async for event in self.stream(turn):
            if isinstance(event, Final):
                final = event.response
        assert final is not None
        return final


async def _until(
    events: AsyncGenerator[TextDelta | Completion], cutoff: asyncio.Event | None
) -> AsyncGenerator[TextDelta | Completion]:
    """The engine's events until `cutoff` is set; then the engine stream is closed (generation
    stops) and ShuttingDown raised, even while the engine is between tokens."""
    if cutoff is None:
        async for event in events:
            yield event
        return
    stop = asyncio.ensure_future(cutoff.wait())
    step: asyncio.Future[TextDelta | Completion] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(events))
            await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                raise ShuttingDown(SHUTDOWN_MESSAGE)
            if isinstance(step.exception(), StopAsyncIteration):
                return
            yield step.result()
    finally:
        stop.cancel()
        if step is not None and not step.done():
            step.cancel()  # the engine generator closes its stream on the way out
            await asyncio.wait({step})
        await events.aclose()
