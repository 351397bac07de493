"""The demo page's publishable key: made for the origin the page is opened from.

Development only. The page needs a key like any widget; rather than asking a new user to make
one first, the server makes a publishable key of the default tenant bound to the page's own
origin, the first time the page is opened from that origin after a start. Keys of earlier
starts are revoked then, so they do not pile up.
"""

from __future__ import annotations

import threading

from service.store.models import DEFAULT_TENANT_ID
from service.store.tenants import KeySpec, TenantStore

NAME_PREFIX = "demo page "


class DemoKeys:
    def __init__(self, tenants: TenantStore) -> None:
        self._tenants = tenants
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def key_for(self, origin: str) -> str:
        with self._lock:
            if origin not in self._keys:
                self._keys[origin] = self._fresh_key(origin)
            return self._keys[origin]

    def _fresh_key(self, origin: str) -> str:
        name = NAME_PREFIX + origin
        for row in self._tenants.list_keys(DEFAULT_TENANT_ID):
            if row.name == name:
                self._tenants.revoke_key(DEFAULT_TENANT_ID, row.id)
        spec = KeySpec(name, "publishable", ["widget"], [origin])
        return self._tenants.create_key(DEFAULT_TENANT_ID, spec)[1]
