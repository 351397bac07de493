"""The demo site: a small fictional product website with the widget embedded by one tag."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from service.deps import ComponentsDep
from service.errors import NotFound
from service.web.demo import demo_origins

STATIC = Path(__file__).resolve().parent / "static"
KEY_SLOT = "__TUNEDESK_DEMO_KEY__"
PAGES = {  # slug: (title, product id the widget's questions default to)
    "x1000": ("X1000 Wi-Fi 6 Router", "halcyon-router-x1000"),
    "t2": ("T2 Smart Thermostat", "halcyon-thermostat-t2"),
    "c3": ("C3 Outdoor Security Camera", "halcyon-camera-c3"),
}
router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(components: ComponentsDep) -> HTMLResponse:
    """The demo site's home page; in development its widget carries the demo's key."""
    return await _page("home", "Smart home, calmly", None, components)


@router.get("/products/{slug}")
async def product(slug: str, components: ComponentsDep) -> HTMLResponse:
    if slug not in PAGES:
        raise NotFound(f"No demo page {slug!r}; try one of {', '.join(PAGES)}.")
    title, product_id = PAGES[slug]
    return await _page(slug, title, product_id, components)


@router.get("/site.css")
async def stylesheet() -> FileResponse:
    return FileResponse(STATIC / "site.css", media_type="text/css")


async def _page(
    name: str, title: str, product_id: str | None, components: ComponentsDep
) -> HTMLResponse:
    settings = components.settings
    key = ""
    if settings.environment == "development":
        key = await asyncio.to_thread(components.demo_keys.key_for, demo_origins(settings))
    product_attr = f' data-product="{product_id}"' if product_id else ""
    html = (
        (STATIC / "page.html")
        .read_text()
        .replace("__TITLE__", title)
        .replace("__MAIN__", (STATIC / "pages" / f"{name}.html").read_text())
        .replace("__PRODUCT__", product_attr)
        .replace(KEY_SLOT, key)
    )
    return HTMLResponse(html)
