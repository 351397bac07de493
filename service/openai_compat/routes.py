"""POST /v1/chat/completions: any OpenAI client talks to the support bot, with retrieval,
templates and guardrails applied exactly as for /v1/chat."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sse_starlette import ServerSentEvent

from service.chat.replies import draining_sse
from service.chat.schemas import ChatRequest
from service.chat.service import ChatEvent, Failure, Final, Token
from service.chat.turn import Caller
from service.deps import ChatCaller, Components, ComponentsDep, caller_of
from service.errors import error_body
from service.openai_compat.protocol import (
    AUTO_MODEL,
    CompletionRequest,
    chunk,
    completion,
    extension,
    finish_reason,
    max_tokens,
)
from service.store.models import new_id

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible chat completions",
    description=CompletionRequest.__doc__ or "",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: CompletionRequest, principal: ChatCaller, components: ComponentsDep
) -> Response:
    caller = await asyncio.to_thread(caller_of, principal, components, body.user)
    request = await asyncio.to_thread(_chat_request, components, body, caller)
    sampling = components.chat.sampling(max_tokens(body), body.temperature)
    turn = await components.chat.start_turn(request, caller, sampling)
    if not body.stream:
        response = await components.chat.answer(turn)
        return JSONResponse(completion(response, body.model))
    cutoff = asyncio.Event()
    events = components.chat.stream(turn, cutoff)
    first = await anext(events)  # engine refusals (busy, down) still get a plain status
    grace_s = components.settings.chat.shutdown_grace_s
    return draining_sse(_chunks(first, events, body.model), cutoff, grace_s)


def _chat_request(components: Components, body: CompletionRequest, caller: Caller) -> ChatRequest:
    """The last user message as a chat request; earlier turns become a stored conversation
    unless `conversation_id` names one that already holds them."""
    product = None if body.model == AUTO_MODEL else body.model
    question = body.messages[-1].text()
    if body.conversation_id is not None:
        return ChatRequest(conversation_id=body.conversation_id, message=question, product=product)
    earlier = [(m.role, m.text()) for m in body.messages[:-1] if m.role in ("user", "assistant")]
    if not earlier:
        return ChatRequest(message=question, product=product)
    conversation = components.store.start_conversation(
        caller.tenant_id, product, caller.channel, caller.customer_ref, caller.widget_key
    )
    components.store.add_history(conversation.id, earlier)
    return ChatRequest(conversation_id=conversation.id, message=question, product=product)


async def _chunks(
    first: ChatEvent, rest: AsyncGenerator[ChatEvent], model: str
) -> AsyncIterator[ServerSentEvent]:
    completion_id = f"chatcmpl-{new_id()}"
    yield _data(chunk(completion_id, model, {"role": "assistant", "content": ""}))
    yield _translate(first, completion_id, model)
    try:
        async for event in rest:
            yield _translate(event, completion_id, model)
    except asyncio.CancelledError:
        await rest.aclose()  # client went away: stop generating, store what we have
        raise
    yield ServerSentEvent("[DONE]")


def _translate(event: ChatEvent, completion_id: str, model: str) -> ServerSentEvent:
    if isinstance(event, Token):
        return _data(chunk(completion_id, model, {"content": event.text}))
    if isinstance(event, Failure):
        return _data(error_body("generation_error", event.message, event.code))
    assert isinstance(event, Final)
    final = chunk(completion_id, model, {}, finish_reason(event.response.finish_reason))
    final["tunedesk"] = extension(event.response)
    return _data(final)


def _data(payload: dict[str, object]) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(payload))
