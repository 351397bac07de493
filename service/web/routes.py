"""The demo page at / and its static files."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from service.deps import ComponentsDep

STATIC = Path(__file__).resolve().parent / "static"
KEY_SLOT = "__TUNEDESK_DEMO_KEY__"
router = APIRouter(include_in_schema=False)


@router.get("/")
async def demo_page(request: Request, components: ComponentsDep) -> HTMLResponse:
    """The demo chat page; in development it carries a publishable key for its own origin."""
    html = (STATIC / "index.html").read_text()
    key = ""
    if components.settings.environment == "development":
        origin = str(request.base_url).rstrip("/")
        key = await asyncio.to_thread(components.demo_keys.key_for, origin)
    return HTMLResponse(html.replace(KEY_SLOT, key))
