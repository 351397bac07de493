"""KV caches of stable prompt prefixes (system rules + troubleshooting template), reused.

On CPU, prefill dominates time to first token. The first system message of every prompt is
stable across questions, so its keys and values are computed once per adapter and copied into
each request that starts with the same tokens.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

Key = tuple[str | None, tuple[int, ...]]


class PrefixCache:
    """A small LRU of KV caches keyed by (adapter, prefix token ids)."""

    def __init__(self, capacity: int = 8) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[Key, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, adapter: str | None, prefix: list[int]) -> Any | None:
        """A private copy of the cached KV for this prefix, or None."""
        key = (adapter, tuple(prefix))
        cached = self._entries.get(key)
        if cached is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return copy.deepcopy(cached)

    def put(self, adapter: str | None, prefix: list[int], kv: Any) -> None:
        if self._capacity <= 0:
            return
        self._entries[(adapter, tuple(prefix))] = copy.deepcopy(kv)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def drop_adapter(self, adapter: str | None) -> None:
        for key in [k for k in self._entries if k[0] == adapter]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
