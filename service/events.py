"""Domain events (conversation.handoff, conversation.resolved, message.rated) and who hears them.

Services publish; subscribers (the webhook dispatcher) decide what to do. Publishing never
fails the request that caused the event: a subscriber's error is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.store.models import new_id, utcnow

log = logging.getLogger(__name__)

EVENT_TYPES = ("conversation.handoff", "conversation.resolved", "message.rated")


@dataclass(frozen=True)
class Event:
    """Something a tenant's systems may want to hear about."""

    tenant_id: str
    type: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: "evt_" + new_id())
    created_at: datetime = field(default_factory=utcnow)


Subscriber = Callable[[Event], Awaitable[None]]


class EventBus:
    """In-process publish/subscribe."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, tenant_id: str, type_: str, data: dict[str, Any]) -> Event:
        assert type_ in EVENT_TYPES, type_
        event = Event(tenant_id, type_, data)
        for subscriber in self._subscribers:
            try:
                await subscriber(event)
            except Exception:
                log.exception("subscriber %r failed on %s %s", subscriber, event.type, event.id)
        return event
