"""The widget's script, its public configuration, and the admin API that sets it. Thin."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from service.auth.principal import Principal
from service.deps import AdminCaller, ComponentsDep, require
from service.widget.schemas import WidgetConfig

SCRIPT = Path(__file__).resolve().parent / "static" / "widget.js"
WidgetCaller = Annotated[Principal, Depends(require("widget"))]
router = APIRouter(tags=["widget"])


@router.get("/widget.js", include_in_schema=False)
async def widget_script() -> FileResponse:
    """The embeddable widget: `<script src="https://HOST/widget.js" data-key="td_pk_..." async>`."""
    headers = {
        "Cache-Control": "public, max-age=300",
        "Cross-Origin-Resource-Policy": "cross-origin",  # it is embedded on other sites
        "X-Content-Type-Options": "nosniff",
    }
    return FileResponse(SCRIPT, media_type="text/javascript; charset=utf-8", headers=headers)


@router.get(
    "/v1/widget/config",
    response_model=WidgetConfig,
    summary="The calling widget key's configuration (publishable key, from its origins)",
)
async def public_config(principal: WidgetCaller, components: ComponentsDep) -> WidgetConfig:
    assert principal.key_id is not None  # a publishable key always has one
    return await asyncio.to_thread(
        components.widget_configs.get, principal.tenant_id, principal.key_id
    )


@router.get(
    "/v1/keys/{key_id}/widget",
    response_model=WidgetConfig,
    summary="A publishable key's widget configuration (admin)",
)
async def get_config(
    key_id: str, principal: AdminCaller, components: ComponentsDep
) -> WidgetConfig:
    return await asyncio.to_thread(components.widget_configs.get, principal.tenant_id, key_id)


@router.put(
    "/v1/keys/{key_id}/widget",
    response_model=WidgetConfig,
    summary="Set a publishable key's widget configuration (admin)",
    description="Replaces the whole configuration; fields left out take their defaults. "
    "Colours are #rgb or #rrggbb with at least 4.5:1 contrast for text; the AI disclosure "
    "can be reworded but not removed.",
)
async def put_config(
    key_id: str, body: WidgetConfig, principal: AdminCaller, components: ComponentsDep
) -> WidgetConfig:
    return await asyncio.to_thread(components.widget_configs.put, principal.tenant_id, key_id, body)
