"""The console's server-rendered pages. Routes are thin: read the session, call a service,
render a template."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.console.guard import (
    ViewerDep,
    WriterDep,
    limit_login,
    login_url,
    same_origin,
)
from service.console.parts import TEMPLATES, Console, ConsoleDep
from service.console.queue import RATING_STATES, QueueFilter, RatingState
from service.console.reviews import agreement
from service.console.sessions import COOKIE, SignedIn
from service.errors import NotFound, TunedeskError

router = APIRouter(prefix="/console", include_in_schema=False)


def render(request: Request, name: str, agent: SignedIn | None, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, {"agent": agent, **context})


def to_login(request: Request) -> RedirectResponse:
    return RedirectResponse(login_url(request), status_code=303)


def _safe_next(target: str) -> str:
    """Only a path inside the console (never another site) after signing in."""
    return target if target.startswith("/console") and not target.startswith("//") else "/console"


@router.get("/login")
def login_form(request: Request, next: str = "/console") -> HTMLResponse:
    return render(request, "login.html", None, next=_safe_next(next))


@router.post("/login")
def login(
    request: Request,
    console: ConsoleDep,
    tenant: Annotated[str, Form()],
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/console",
) -> Response:
    same_origin(request)
    limit_login(request, console, tenant, email)
    try:
        agent = console.accounts.verify(tenant, email, password)
    except TunedeskError as exc:
        page = render(request, "login.html", None, error=exc.message, tenant=tenant, email=email)
        page.status_code = exc.status_code
        page.init_headers()
        return page
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_session_cookie(response, console, console.sessions.start(agent))
    return response


def _set_session_cookie(response: Response, console: Console, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=console.components.settings.console.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=console.secure_cookies,
        path="/console",
    )


@router.post("/logout")
def logout(agent: WriterDep, console: ConsoleDep) -> Response:
    console.sessions.end(agent.session_id)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("/invite/{token}")
def invite_form(request: Request, token: str) -> HTMLResponse:
    return render(request, "invite.html", None)


@router.post("/invite/{token}")
def accept_invite(
    request: Request,
    console: ConsoleDep,
    token: str,
    password: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
) -> Response:
    same_origin(request)
    try:
        agent = console.accounts.accept(token, password, name)
    except TunedeskError as exc:
        page = render(request, "invite.html", None, error=exc.message)
        page.status_code = exc.status_code
        page.init_headers()
        return page
    response = RedirectResponse("/console", status_code=303)
    _set_session_cookie(response, console, console.sessions.start(agent))
    return response


def queue_filter(
    product: str | None = None,
    channel: str | None = None,
    model_version: str | None = None,
    rating: Annotated[str, Query(pattern="^(" + "|".join(RATING_STATES) + ")$")] = "any",
    since: date | None = None,
    until: date | None = None,
) -> QueueFilter:
    state: RatingState = rating  # type: ignore[assignment]  # checked by the pattern
    return QueueFilter(product or None, channel or None, model_version or None, state, since, until)


QueueQuery = Annotated[QueueFilter, Depends(queue_filter)]


@router.get("")
async def queue_page(
    request: Request, agent: ViewerDep, console: ConsoleDep, where: QueueQuery
) -> Response:
    if agent is None:
        return to_login(request)
    limit = console.components.settings.console.low_queue_limit
    items = await asyncio.to_thread(console.reviews.queue, agent.tenant_id, where, limit)
    choices = await asyncio.to_thread(console.reviews.choices, agent.tenant_id)
    return render(
        request,
        "queue.html",
        agent,
        active="queue",
        items=items,
        where=where,
        rating_states=RATING_STATES,
        **choices,
    )


@router.get("/answers/{message_id}")
async def answer_page(
    request: Request, agent: ViewerDep, console: ConsoleDep, message_id: str
) -> Response:
    if agent is None:
        return to_login(request)
    reviews = console.reviews
    focus = await asyncio.to_thread(reviews.answer, agent.tenant_id, message_id)
    conversation = await asyncio.to_thread(
        reviews.conversation, agent.tenant_id, focus.conversation_id
    )
    answer_ids = [m.id for m in conversation.messages if m.role == "assistant"]
    ratings = await asyncio.to_thread(reviews.ratings_of, answer_ids)
    agreements = {m: agreement(views) for m, views in ratings.items()}
    return render(
        request,
        "answer.html",
        agent,
        active="queue",
        conversation=conversation,
        focus=focus,
        ratings=ratings,
        agreements=agreements,
    )


@router.get("/chunks/{chunk_id}")
async def chunk_page(
    request: Request, agent: ViewerDep, console: ConsoleDep, chunk_id: str
) -> Response:
    if agent is None:
        return to_login(request)
    index = console.components.indexes.for_tenant(agent.tenant_id)
    found = await asyncio.to_thread(index.chunks, [chunk_id])
    if chunk_id not in found:
        raise NotFound(f"No source chunk {chunk_id!r} in this workspace's knowledge base.")
    return render(request, "chunk.html", agent, chunk=found[chunk_id])
