"""Admin HTTP routes. Thin: need a key with the admin scope, call the service, render."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from pydantic import BaseModel, Field

from service.chat.records import source
from service.chat.schemas import ChatRequest, HandoffOut, Source
from service.deps import AdminCaller, ComponentsDep, caller_of

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class PromptMessage(BaseModel):
    role: str
    content: str


class PromptPreview(BaseModel):
    """The exact prompt a message would get, with token counts per part."""

    messages: list[PromptMessage]
    token_counts: dict[str, int] = Field(
        description="rules, troubleshooting, sources, history, question and total"
    )
    troubleshooting_template: str | None
    sources: list[Source]
    handoff: HandoffOut | None = Field(
        description="Set when the message would go to a human instead of the model."
    )
    flags: list[str]


@router.post("/prompt-preview", response_model=PromptPreview, summary="Preview a prompt")
async def prompt_preview(
    body: ChatRequest, principal: AdminCaller, components: ComponentsDep
) -> PromptPreview:
    """What the model would be asked for this message; nothing is stored."""
    caller = await asyncio.to_thread(caller_of, principal, components)
    prompt, handoff, flags = await components.chat.preview(body, caller)
    return PromptPreview(
        messages=[PromptMessage(**m) for m in prompt.messages],
        token_counts=prompt.token_counts,
        troubleshooting_template=prompt.template.id if prompt.template else None,
        sources=[source(i, h) for i, h in enumerate(prompt.sources, 1)],
        handoff=HandoffOut(reason=handoff.reason, detail=handoff.detail) if handoff else None,
        flags=flags,
    )
