"""CORS for widget keys' origins only: a browser may call the API from a site that some active
publishable key is bound to, and from nowhere else."""

from __future__ import annotations

import time

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from service.store.tenants import TenantStore

REFRESH_S = 10.0  # a new widget key works cross-origin within this many seconds


class WidgetCORSMiddleware(CORSMiddleware):
    """Starlette's CORS handling, with the allowed origins read from the keys table."""

    def __init__(self, app: ASGIApp, tenants: TenantStore) -> None:
        super().__init__(
            app,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Accept"],
            expose_headers=["Retry-After", "Idempotent-Replayed"],
            max_age=600,
        )
        self._tenants = tenants
        self._origins: set[str] = set()
        self._read_at = float("-inf")

    def is_allowed_origin(self, origin: str) -> bool:
        if time.monotonic() - self._read_at > REFRESH_S:
            self._origins = self._tenants.widget_origins()
            self._read_at = time.monotonic()
        return origin in self._origins
