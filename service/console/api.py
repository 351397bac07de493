"""The console's JSON calls: rating, agents, export. Every state-changing one needs the
session's CSRF token."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from service.console.accounts import Role
from service.console.export import export_lines
from service.console.guard import AdminDep, AdminWriterDep, WriterDep
from service.console.pages import QueueQuery
from service.console.parts import ConsoleDep
from service.console.reviews import ConsoleRating, agreement
from service.deps import AdminCaller
from service.store.models import Agent

router = APIRouter(prefix="/console/api", include_in_schema=False)  # the console's own calls


class RatingIn(BaseModel):
    """An agent's rating: at least a label or a score."""

    label: Literal["good", "bad"] | None = None
    score: int | None = Field(default=None, ge=1, le=5)
    tags: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=10)
    comment: str | None = Field(default=None, max_length=4000)
    corrected_answer: str | None = Field(default=None, max_length=16000)


@router.post("/answers/{message_id}/ratings", status_code=201)
async def rate(
    message_id: str, body: RatingIn, agent: WriterDep, console: ConsoleDep
) -> dict[str, Any]:
    """Add this agent's rating (earlier ratings are kept); returns every rating and agreement."""
    row = await console.reviews.rate(
        agent.tenant_id, agent.agent_id, message_id, ConsoleRating(**body.model_dump())
    )
    views = (await asyncio.to_thread(console.reviews.ratings_of, [message_id]))[message_id]
    agree = agreement(views)
    return {
        "id": row.id,
        "corrected_answer": row.corrected_answer,
        "ratings": [
            {
                "by": v.by,
                "label": v.rating.label,
                "score": v.rating.score,
                "at": str(v.rating.created_at),
            }
            for v in views
        ],
        "agreement": {
            "raters": agree.raters,
            "good": agree.good,
            "bad": agree.bad,
            "share": agree.share,
        },
    }


class InviteIn(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    role: Role = "agent"


def _agent_out(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "email": agent.email,
        "name": agent.name,
        "role": agent.role,
        "status": "disabled"
        if agent.disabled_at
        else ("invited" if agent.invite_hash else "active"),
        "last_login_at": agent.last_login_at,
    }


@router.get("/agents")
def list_agents(agent: AdminDep, console: ConsoleDep) -> list[dict[str, Any]]:
    return [_agent_out(a) for a in console.accounts.list(agent.tenant_id)]


@router.post("/agents", status_code=201)
def invite(
    body: InviteIn, request: Request, agent: AdminWriterDep, console: ConsoleDep
) -> dict[str, Any]:
    """Invite an agent: the link (shown once) lets them set their password."""
    made = console.accounts.invite(agent.tenant_id, body.email, body.role, agent.agent_id)
    link = str(request.base_url).rstrip("/") + f"/console/invite/{made.token}"
    return _agent_out(made.agent) | {"invite_url": link}


@router.post("/agents/{agent_id}/disable")
def disable(agent_id: str, agent: AdminWriterDep, console: ConsoleDep) -> dict[str, Any]:
    return _agent_out(console.accounts.set_disabled(agent.tenant_id, agent_id, True))


@router.post("/agents/{agent_id}/enable")
def enable(agent_id: str, agent: AdminWriterDep, console: ConsoleDep) -> dict[str, Any]:
    return _agent_out(console.accounts.set_disabled(agent.tenant_id, agent_id, False))


def _jsonl(console: ConsoleDep, tenant_id: str, where: QueueQuery) -> StreamingResponse:
    lines = export_lines(console.reviews.sessions, tenant_id, where)
    name = f"tunedesk-{tenant_id}-transcripts.jsonl"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(lines, media_type="application/x-ndjson", headers=headers)


@router.get("/export")
def export(agent: AdminDep, console: ConsoleDep, where: QueueQuery) -> StreamingResponse:
    """Rated transcripts (agents' corrections included) as JSONL, filtered like the queue."""
    return _jsonl(console, agent.tenant_id, where)


admin_router = APIRouter(prefix="/v1/transcripts", tags=["transcripts"])
JSONL = {
    200: {
        "description": "One `tunedesk.transcript/v1` conversation per line",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
    }
}


@admin_router.get(
    "/export",
    response_class=StreamingResponse,
    responses=JSONL,  # type: ignore[arg-type]
    summary="Rated transcripts (agents' corrections included) as JSONL, for dataset build",
)
def export_for_key(
    caller: AdminCaller, console: ConsoleDep, where: QueueQuery
) -> StreamingResponse:
    """The same export for an API key with the admin scope (scripts, cron jobs)."""
    return _jsonl(console, caller.tenant_id, where)
