"""`/healthz` and `/metrics`.

Module-level endpoints that read the app's components from the request: FastAPI caches what it
learns about every endpoint function in module-level caches, so an endpoint closing over one
app's components would keep that app (its model, store and clients) alive for good.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from service.deps import ComponentsDep

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness and readiness")
async def healthz(components: ComponentsDep) -> JSONResponse:
    """200 when the engine is up, 503 (degraded) when it is not."""
    engine = await components.engine.health()
    body = {
        "status": "ok" if engine.ok else "degraded",
        "engine": {"ok": engine.ok, "model": engine.model, "detail": engine.detail},
        "knowledge": {"chunks": components.index.count()},
    }
    return JSONResponse(body, status_code=200 if engine.ok else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(components: ComponentsDep) -> Response:
    """The app's metrics in Prometheus' text format."""
    return components.metrics.render()
