"""Pages beyond the review loop: the insight dashboard and the admins' agents page."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.console.charts import bar_chart, line_chart
from service.console.guard import ViewerDep
from service.console.insight import METRICS, insight
from service.console.pages import render, to_login
from service.console.parts import ConsoleDep
from service.errors import Forbidden, InvalidRequest

router = APIRouter(prefix="/console", include_in_schema=False)
DEFAULT_DAYS = 30
MAX_DAYS = 366


@router.get("/dashboard")
async def dashboard(
    request: Request,
    agent: ViewerDep,
    console: ConsoleDep,
    since: date | None = None,
    until: date | None = None,
) -> Response:
    if agent is None:
        return to_login(request)
    until = until or datetime.now(UTC).date()
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    if not timedelta(0) <= until - since <= timedelta(days=MAX_DAYS):
        raise InvalidRequest(f"since must be before until, at most {MAX_DAYS} days apart.")
    sessions = console.reviews.sessions
    figures = await asyncio.to_thread(insight, sessions, agent.tenant_id, since, until)
    charts = {
        metric: {split: bar_chart(rates, f"{title} by {split}") for split, rates in splits.items()}
        for metric, splits in figures.rates.items()
        for title in [METRICS[metric]]
    }
    return render(
        request,
        "dashboard.html",
        agent,
        active="dashboard",
        since=since,
        until=until,
        per_day=line_chart(figures.days, figures.answers_per_day),
        charts=charts,
        totals=figures.totals,
        titles=METRICS,
    )


@router.get("/agents")
async def agents_page(request: Request, agent: ViewerDep, console: ConsoleDep) -> Response:
    if agent is None:
        return to_login(request)
    if not agent.is_admin:
        raise Forbidden("Only an admin of this workspace may manage agents.")
    agents = await asyncio.to_thread(console.accounts.list, agent.tenant_id)
    return render(request, "agents.html", agent, active="agents", agents=agents)
