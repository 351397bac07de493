"""Rate limits per API key and per client IP, with Retry-After.

The `limits` library does the counting in a moving window; its storage is chosen by URL:
`memory://` inside this process (the default), `redis://host:port/db` shared by every replica.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from service.errors import RateLimited

log = logging.getLogger(__name__)


class RateLimiter:
    """Checks one hit against a named limit; raises RateLimited when it is spent."""

    def __init__(self, storage_url: str, per_key: str, per_ip: str) -> None:
        self.storage_url = storage_url
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url))
        self._limits: dict[str, RateLimitItem] = {"key": parse(per_key), "ip": parse(per_ip)}

    def hit(self, scope: str, identity: str) -> None:
        """Count one request of `identity` (a key id or an IP) against the `scope` limit."""
        limit = self._limits[scope]
        try:
            allowed = self._limiter.hit(limit, scope, identity)
        except Exception:  # a broken Redis must not take the API down with it
            log.exception("rate limiter storage %s failed; request let through", self.storage_url)
            return
        if not allowed:
            raise RateLimited(
                f"Too many requests for this {_what(scope)} (limit {limit}). "
                "Retry after the number of seconds in the Retry-After header.",
                self._retry_after(limit, scope, identity),
            )

    def _retry_after(self, limit: RateLimitItem, scope: str, identity: str) -> int:
        reset_at = self._limiter.get_window_stats(limit, scope, identity).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def reset(self) -> None:
        """Forget every count (tests, and operators after raising a limit)."""
        self._limiter.storage.reset()


def _what(scope: str) -> str:
    return {"key": "API key", "ip": "client IP address"}[scope]
