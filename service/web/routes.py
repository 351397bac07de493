"""The demo page at / and its static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/")
async def demo_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")
