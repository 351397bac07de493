"""Which model version answers a conversation: the tenant's active one, or its canary for a
stable share of conversations, or the configured adapter when the tenant has none.

The chat service asks once per answer, so the tenant's serving versions are cached: the cache
entry is dropped at once when this process changes a version, and expires after `ttl_s` so that
changes made through another replica are seen too.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.store.models import ModelVersion


@dataclass(frozen=True)
class Serving:
    """What answers a tenant's customers now."""

    active: tuple[str, str | None] | None = None  # (version name, adapter)
    canary: tuple[str, str | None] | None = None
    canary_share: float = 0.0


def serving_of(versions: list[ModelVersion]) -> Serving:
    """The active and canary versions among a tenant's versions."""
    active = next((v for v in versions if v.status == "active"), None)
    canary = next((v for v in versions if v.status == "canary" and v.canary_share > 0), None)
    return Serving(
        active=(active.name, active.adapter) if active else None,
        canary=(canary.name, canary.adapter) if canary else None,
        canary_share=canary.canary_share if canary else 0.0,
    )


def in_canary(version: str, conversation_id: str, share: float) -> bool:
    """Whether a conversation falls in a canary's share: a hash, so every answer of one
    conversation gets the same version, and raising the share only adds conversations."""
    digest = hashlib.sha256(f"{version}\0{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


class RegistryVersions:
    """The VersionChooser backed by the model-version registry."""

    def __init__(
        self,
        load: Callable[[str], list[ModelVersion]],
        default_adapter: str | None,
        ttl_s: float = 5.0,
    ) -> None:
        self._load = load
        self._default = default_adapter
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Serving]] = {}
        self._lock = threading.Lock()

    @property
    def default_adapter(self) -> str | None:
        """What answers a tenant that has no active version."""
        return self._default

    def choose(self, tenant_id: str, conversation_id: str) -> tuple[str | None, str | None]:
        serving = self.serving(tenant_id)
        if serving.canary and in_canary(serving.canary[0], conversation_id, serving.canary_share):
            return serving.canary
        if serving.active:
            return serving.active
        return None, self._default

    def serving(self, tenant_id: str) -> Serving:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        serving = serving_of(self._load(tenant_id))
        with self._lock:
            self._cache[tenant_id] = (now + self._ttl_s, serving)
        return serving

    def invalidate(self, tenant_id: str) -> None:
        """Forget the tenant's cached versions (after a change in this process)."""
        with self._lock:
            self._cache.pop(tenant_id, None)
