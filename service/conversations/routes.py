"""Conversations: create, read, list, post messages, hand off, close. Thin routes."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from service.chat.routes import STREAM_DOC, IdempotencyKey, wants_stream
from service.chat.schemas import ChatRequest, ChatResponse
from service.conversations.schemas import (
    Channel,
    ConversationCreate,
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    HandoffCreate,
    MessageCreate,
    MessageOut,
    Status,
)
from service.deps import ChatCaller, ComponentsDep, ConversationReader, ReaderCaller, caller_of
from service.store.repository import ConversationFilter

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.post("", response_model=ConversationOut, status_code=201, summary="Start a conversation")
async def create(
    body: ConversationCreate, principal: ChatCaller, components: ComponentsDep
) -> ConversationOut:
    caller = await asyncio.to_thread(
        caller_of, principal, components, body.customer_ref, body.channel
    )
    conversation = await components.conversations.open(body.product, caller)
    return ConversationOut.of(conversation)


@router.get("", response_model=ConversationPage, summary="List conversations, newest first")
async def list_conversations(
    principal: ReaderCaller,
    components: ComponentsDep,
    status: Status | None = None,
    product: Annotated[str | None, Query(max_length=100)] = None,
    channel: Channel | None = None,
    customer_ref: Annotated[str | None, Query(max_length=200)] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ConversationPage:
    where = ConversationFilter(
        status, product, channel, customer_ref, created_after, created_before
    )
    rows, next_cursor = await asyncio.to_thread(
        components.store.list_conversations, principal.tenant_id, where, limit, cursor
    )
    return ConversationPage(data=[ConversationOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{conversation_id}",
    response_model=ConversationDetail,
    summary="A conversation with its messages",
)
async def get(
    conversation_id: str, principal: ConversationReader, components: ComponentsDep
) -> ConversationDetail:
    row = await asyncio.to_thread(
        components.store.get_conversation,
        principal.tenant_id,
        conversation_id,
        principal.conversation_key,
    )
    messages = [MessageOut.of(m) for m in row.messages]
    return ConversationDetail.with_messages(row, messages)


@router.post(
    "/{conversation_id}/messages",
    response_model=ChatResponse,
    summary="Post a customer message and get the answer",
    description=STREAM_DOC,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def post_message(
    conversation_id: str,
    body: MessageCreate,
    principal: ChatCaller,
    components: ComponentsDep,
    idempotency_key: IdempotencyKey = None,
    accept: Annotated[str, Header()] = "",
) -> Response:
    caller = await asyncio.to_thread(caller_of, principal, components)
    request = ChatRequest(
        conversation_id=conversation_id, message=body.message, product=body.product
    )
    route = f"conversations/{conversation_id}/messages"
    stream = wants_stream(accept)
    return await components.replies.reply(request, caller, stream, idempotency_key, route)


@router.post(
    "/{conversation_id}/handoff",
    response_model=ConversationOut,
    summary="Hand the conversation to a human agent",
)
async def handoff(
    conversation_id: str, body: HandoffCreate, principal: ChatCaller, components: ComponentsDep
) -> ConversationOut:
    row = await components.conversations.request_handoff(
        principal.tenant_id, conversation_id, body.reason, principal.conversation_key
    )
    return ConversationOut.of(row)


@router.post(
    "/{conversation_id}/close", response_model=ConversationOut, summary="Resolve a conversation"
)
async def close(
    conversation_id: str, principal: ReaderCaller, components: ComponentsDep
) -> ConversationOut:
    row = await components.conversations.close(principal.tenant_id, conversation_id)
    return ConversationOut.of(row)
