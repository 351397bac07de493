"""HTTP routes for chatting and rating. Thin: parse, call the chat service, render."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import Response

from service.chat.schemas import (
    ChatRequest,
    ChatResponse,
    ProductOut,
    RatingRequest,
    RatingResponse,
)
from service.deps import ChatCaller, ComponentsDep, caller_of
from service.errors import Forbidden
from service.store.repository import RatingInput

router = APIRouter(prefix="/v1", tags=["chat"])

STREAM_DOC = (
    "Send `Accept: text/event-stream` to receive Server-Sent Events: `token` events "
    '(`{"text": ...}`), then one `final` event with the full response below. If generation '
    "fails midway, an `error` event comes before `final`; what was generated is still stored. "
    "Send an `Idempotency-Key` header to make retries safe: a retry with the same key and body "
    "gets the first answer again (header `Idempotent-Replayed: true`), never a second one."
)
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=255, description="Any unique string")
]


def wants_stream(accept: str) -> bool:
    return "text/event-stream" in accept


@router.post(
    "/chat",
    response_model=ChatResponse,
    summary="Answer a customer message",
    description="Without `conversation_id` a new conversation starts. " + STREAM_DOC,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat(
    body: ChatRequest,
    principal: ChatCaller,
    components: ComponentsDep,
    idempotency_key: IdempotencyKey = None,
    accept: Annotated[str, Header()] = "",
) -> Response:
    caller = await asyncio.to_thread(caller_of, principal, components)
    stream = wants_stream(accept)
    return await components.replies.reply(body, caller, stream, idempotency_key, "chat")


@router.post(
    "/messages/{message_id}/rating",
    response_model=RatingResponse,
    status_code=201,
    summary="Rate an answer",
    description="Customers rate good/bad or 1-5; agents (a key with the agent scope) may also "
    "send the corrected answer, tags and a comment, which feed retraining.",
)
async def rate(
    message_id: str, body: RatingRequest, principal: ChatCaller, components: ComponentsDep
) -> RatingResponse:
    if body.by == "agent" and not principal.allows("agent", "admin"):
        raise Forbidden("Agent ratings need a key with the agent scope.")
    rating = RatingInput(
        rater=body.by,
        label=body.rating,
        score=body.score,
        corrected_answer=body.corrected_answer,
        comment=body.comment,
        tags=body.tags,
    )
    row = await components.ratings.rate(
        principal.tenant_id, message_id, rating, principal.conversation_key
    )
    return RatingResponse(
        id=row.id,
        message_id=message_id,
        rating=row.label,
        score=row.score,
        by=row.rater,
        corrected_answer=row.corrected_answer,
        tags=row.tags or [],
        comment=row.comment,
    )


@router.get("/products", response_model=list[ProductOut], summary="Products the bot knows")
async def products(principal: ChatCaller, components: ComponentsDep) -> list[ProductOut]:
    caller = await asyncio.to_thread(caller_of, principal, components)
    offered = caller.products
    return [
        ProductOut(id=p.id, name=p.name)
        for p in components.catalog.products
        if offered is None or p.id in offered
    ]
