"""Answer a customer message over HTTP: JSON or Server-Sent Events, safe to retry.

With an `Idempotency-Key` header the first request runs and its final response is stored;
a retry with the same key and body gets that response again (header `Idempotent-Replayed`),
so a helpdesk that retries after a timeout never creates a second message or answer.
A streamed answer with a key is generated to its end even when the client goes away
mid-stream (a dropped connection, a closed tab): the retry is then answered with the whole
answer instead of waiting out a claim nobody completes. Without a key, a client that goes
away stops the generation and what was written is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from service.chat.schemas import ChatRequest, ChatResponse
from service.chat.service import ChatEvent, ChatService, Failure, Final, Token
from service.chat.turn import Caller
from service.errors import error_body
from service.store.idempotency import IdempotencyStore

REPLAYED = "Idempotent-Replayed"
OnFinal = Callable[[ChatResponse], Awaitable[None]]
OnAbort = Callable[[], Awaitable[None]]
# answers going on for clients that may have gone away, with the cutoff that ends each
Unattended = dict[asyncio.Task[None], asyncio.Event]


class Replies:
    def __init__(
        self, chat: ChatService, idempotency: IdempotencyStore, shutdown_grace_s: float = 10.0
    ) -> None:
        self._chat = chat
        self._idempotency = idempotency
        self._grace_s = shutdown_grace_s
        self._unattended: Unattended = {}

    async def reply(
        self, request: ChatRequest, caller: Caller, stream: bool, key: str | None, route: str
    ) -> Response:
        """The answer to one message, as JSON or as an SSE stream."""
        if key is None:
            return await self._run(request, caller, stream, None)
        tenant = caller.tenant_id
        fingerprint = _fingerprint(route, request)
        earlier = await asyncio.to_thread(self._idempotency.begin, tenant, key, fingerprint)
        if earlier is not None:
            return _replay(ChatResponse.model_validate(earlier.response), stream)

        async def remember(response: ChatResponse) -> None:
            body = response.model_dump(mode="json")
            await asyncio.to_thread(self._idempotency.complete, tenant, key, 200, body)

        async def forget() -> None:
            await asyncio.to_thread(self._idempotency.release, tenant, key)

        try:
            return await self._run(request, caller, stream, remember, forget)
        except BaseException:
            await forget()
            raise

    async def _run(
        self,
        request: ChatRequest,
        caller: Caller,
        stream: bool,
        on_final: OnFinal | None = None,
        on_abort: OnAbort | None = None,
    ) -> Response:
        turn = await self._chat.start_turn(request, caller)
        if not stream:
            response = await self._chat.answer(turn)
            if on_final is not None:
                await on_final(response)
            return JSONResponse(response.model_dump(mode="json"))
        cutoff = asyncio.Event()
        events = self._chat.stream(turn, cutoff)
        first = await anext(events)  # engine refusals (busy, down) still get a plain status
        if on_final is None:
            return draining_sse(_sse(first, events), cutoff, self._grace_s)
        answer = _Unattended(_prepend(first, events), on_final, on_abort, self._unattended, cutoff)
        return draining_sse(answer.events(), cutoff, self._grace_s)

    async def aclose(self) -> None:
        """At shutdown: keyed answers whose clients went away get the grace period to finish,
        then are cut as streamed ones are (`shutting_down`), stored and their keys completed."""
        await finish_unattended(self._unattended, self._grace_s)


SHUTDOWN_MARGIN_S = 5.0  # after the cut: time to store the answer and send error + final


def draining_sse(
    content: AsyncIterator[ServerSentEvent], cutoff: asyncio.Event, grace_s: float
) -> EventSourceResponse:
    """An SSE response that outlives a shutdown signal (SIGTERM) by `grace_s`, then sets
    `cutoff`, which ends the answer with an error event and its final event."""
    shutdown = anyio.Event()  # sse-starlette sets it when uvicorn is told to exit

    async def watched() -> AsyncIterator[ServerSentEvent]:
        watcher = asyncio.create_task(_cut_after_grace(shutdown, cutoff, grace_s))
        try:
            async for event in content:
                yield event
        finally:
            watcher.cancel()

    return EventSourceResponse(
        watched(),
        ping=15,
        shutdown_event=shutdown,
        shutdown_grace_period=grace_s + SHUTDOWN_MARGIN_S,
    )


async def _cut_after_grace(shutdown: anyio.Event, cutoff: asyncio.Event, grace_s: float) -> None:
    await shutdown.wait()
    await asyncio.sleep(grace_s)
    cutoff.set()


def _fingerprint(route: str, request: ChatRequest) -> str:
    return hashlib.sha256(f"{route}\n{request.model_dump_json()}".encode()).hexdigest()


def _replay(response: ChatResponse, stream: bool) -> Response:
    if not stream:
        return JSONResponse(response.model_dump(mode="json"), headers={REPLAYED: "true"})

    async def events() -> AsyncIterator[ServerSentEvent]:
        yield _event(Token(response.answer))
        yield _event(Final(response))

    return EventSourceResponse(events(), headers={REPLAYED: "true"})


async def _sse(first: ChatEvent, rest: AsyncGenerator[ChatEvent]) -> AsyncIterator[ServerSentEvent]:
    try:
        async for event in _prepend(first, rest):
            yield _event(event)
    except asyncio.CancelledError:
        await rest.aclose()  # client went away: stop generating, store what we have
        raise


class _Unattended:
    """An answer generated in its own task, so that it ends (stored, its key completed) whether
    or not anybody is still reading: the SSE response only follows it through a queue."""

    def __init__(
        self,
        events: AsyncIterator[ChatEvent],
        on_final: OnFinal,
        on_abort: OnAbort | None,
        running: Unattended,
        cutoff: asyncio.Event,
    ) -> None:
        self._source = events
        self._on_final = on_final
        self._on_abort = on_abort
        self._queue: asyncio.Queue[ChatEvent | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._run())
        # listed in `running` (and so kept alive) while it runs, with the cutoff that ends it
        running[self._task] = cutoff
        self._task.add_done_callback(lambda task: running.pop(task, None))

    async def _run(self) -> None:
        finished = False
        try:
            async for event in self._source:
                if isinstance(event, Final):
                    await self._on_final(event.response)
                    finished = True
                self._queue.put_nowait(event)
        finally:
            self._queue.put_nowait(None)
            if not finished and self._on_abort is not None:
                await asyncio.shield(self._on_abort())  # a retry runs again

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        while (event := await self._queue.get()) is not None:
            yield _event(event)
        await self._task  # its error, if it had one, ends this response too


async def _prepend(first: ChatEvent, rest: AsyncGenerator[ChatEvent]) -> AsyncIterator[ChatEvent]:
    yield first
    async for event in rest:
        yield event


async def finish_unattended(running: Unattended, grace_s: float) -> None:
    """Wait up to `grace_s` for the answers still going on, then cut the rest and let them
    store what they have (SHUTDOWN_MARGIN_S at most)."""
    if not running:
        return
    _, cut = await asyncio.wait(list(running), timeout=grace_s)
    for task in cut:
        if (cutoff := running.get(task)) is not None:
            cutoff.set()
    if cut:
        await asyncio.wait(cut, timeout=SHUTDOWN_MARGIN_S)


def _event(event: ChatEvent) -> ServerSentEvent:
    if isinstance(event, Token):
        return ServerSentEvent(json.dumps({"text": event.text}), event="token")
    if isinstance(event, Failure):
        body: dict[str, Any] = error_body("generation_error", event.message, event.code)
        return ServerSentEvent(json.dumps(body), event="error")
    assert isinstance(event, Final)
    return ServerSentEvent(event.response.model_dump_json(), event="final")
