"""HTTP routes for chatting and rating. Thin: parse, call the chat service, render."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse, ServerSentEvent

from service.chat.schemas import (
    ChatRequest,
    ChatResponse,
    ProductOut,
    RatingRequest,
    RatingResponse,
)
from service.chat.service import ChatEvent, Failure, Final, Token
from service.deps import ComponentsDep
from service.errors import error_body
from service.store.repository import RatingInput

router = APIRouter(prefix="/v1", tags=["chat"])

STREAM_DOC = (
    "Send `Accept: text/event-stream` to receive Server-Sent Events: `token` events "
    '(`{"text": ...}`), then one `final` event with the full response below. If generation '
    "fails midway, an `error` event comes before `final`; what was generated is still stored."
)


@router.post(
    "/chat",
    response_model=ChatResponse,
    summary="Answer a customer message",
    description=STREAM_DOC,
)
async def chat(
    body: ChatRequest, components: ComponentsDep, accept: Annotated[str, Header()] = ""
) -> Any:
    turn = await components.chat.start_turn(body)
    if "text/event-stream" not in accept:
        return await components.chat.answer(turn)
    events = components.chat.stream(turn)
    first = await anext(events)  # engine refusals (busy, down) still get a plain error status
    return EventSourceResponse(_sse(first, events), ping=15)


async def _sse(first: ChatEvent, rest: AsyncGenerator[ChatEvent]) -> AsyncIterator[ServerSentEvent]:
    yield _event(first)
    try:
        async for event in rest:
            yield _event(event)
    except asyncio.CancelledError:
        await rest.aclose()  # client went away: stop generating, store what we have
        raise


def _event(event: ChatEvent) -> ServerSentEvent:
    if isinstance(event, Token):
        return ServerSentEvent(json.dumps({"text": event.text}), event="token")
    if isinstance(event, Failure):
        body = error_body("generation_error", event.message, event.code)
        return ServerSentEvent(json.dumps(body), event="error")
    assert isinstance(event, Final)
    return ServerSentEvent(event.response.model_dump_json(), event="final")


@router.post(
    "/messages/{message_id}/rating",
    response_model=RatingResponse,
    status_code=201,
    summary="Rate an answer",
)
async def rate(message_id: str, body: RatingRequest, components: ComponentsDep) -> RatingResponse:
    rating = RatingInput(
        rater=body.by,
        label=body.rating,
        score=body.score,
        corrected_answer=body.corrected_answer,
        comment=body.comment,
    )
    row = await components.ratings.rate(message_id, rating)
    return RatingResponse(
        id=row.id, message_id=message_id, rating=row.label, score=row.score, by=row.rater
    )


@router.get("/products", response_model=list[ProductOut], summary="Products the bot knows")
async def products(components: ComponentsDep) -> list[ProductOut]:
    return [ProductOut(id=p.id, name=p.name) for p in components.catalog.products]
