"""Every console route: pages, the JSON calls, the admin export, and the static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.console import api, insight_pages, pages, retrain
from service.errors import NotFound

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"console.css": "text/css", "console.js": "text/javascript"}

router = APIRouter()


@router.get("/console/static/{name}", include_in_schema=False)
def static(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise NotFound(f"No console file {name!r}.")
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name])


router.include_router(pages.router)
router.include_router(insight_pages.router)
router.include_router(api.router)
router.include_router(api.admin_router)
router.include_router(retrain.router)
