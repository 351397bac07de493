"""The demo site's publishable key: one per start, for the configured host and port only.

Development only. The demo site embeds the widget like any vendor's site would, and a widget
needs a publishable key; rather than asking a new user to make one first, the server makes
one key of the default tenant the first time the site is opened after a start, bound to the
origins of `TUNEDESK_HOST`/`TUNEDESK_PORT` (never to a request's Host header, which anyone
can set). Keys of earlier starts are revoked then, so they do not pile up.
"""

from __future__ import annotations

import threading

from service.config import Settings
from service.store.models import DEFAULT_TENANT_ID
from service.store.tenants import KeySpec, TenantStore
from service.widget.schemas import WidgetConfig
from service.widget.store import WidgetConfigStore

NAME = "demo site"
LOOPBACK = ("127.0.0.1", "localhost")
DEMO_WIDGET = WidgetConfig.model_validate(
    {
        "title": "Halcyon Home support",
        "greeting": "Hi! I can help with the X1000 router, the T2 thermostat and the C3 camera. "
        "What's going on?",
        "colours": {"accent": "#0f5c8c"},
        "suggested_questions": [
            "My router shows error E3, what do I do?",
            "How do I factory reset the thermostat?",
            "Why is the camera offline?",
        ],
    }
)


def demo_origins(settings: Settings) -> list[str]:
    """The origins a browser shows for the configured host and port (both loopback names)."""
    hosts = LOOPBACK if settings.host in (*LOOPBACK, "0.0.0.0") else (settings.host,)
    return [f"http://{host}:{settings.port}" for host in hosts]


class DemoKeys:
    def __init__(self, tenants: TenantStore, widget_configs: WidgetConfigStore) -> None:
        self._tenants = tenants
        self._widget_configs = widget_configs
        self._key: str | None = None
        self._lock = threading.Lock()

    def key_for(self, origins: list[str]) -> str:
        """The demo site's key, made on first use for `origins` (from settings)."""
        with self._lock:
            if self._key is None:
                self._key = self._fresh_key(origins)
            return self._key

    def _fresh_key(self, origins: list[str]) -> str:
        for row in self._tenants.list_keys(DEFAULT_TENANT_ID):
            if row.name == NAME or row.name.startswith("demo page "):  # earlier starts'
                self._tenants.revoke_key(DEFAULT_TENANT_ID, row.id)
        spec = KeySpec(NAME, "publishable", ["widget"], origins)
        row, plain = self._tenants.create_key(DEFAULT_TENANT_ID, spec)
        self._widget_configs.put(DEFAULT_TENANT_ID, row.id, DEMO_WIDGET)
        return plain
