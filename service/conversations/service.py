"""Conversation lifecycle outside a chat turn: open, hand off on request, resolve."""

from __future__ import annotations

import asyncio

from knowledge.catalog import ProductCatalog
from service.chat.service import FixedVersion, VersionChooser, offered_product
from service.chat.turn import Caller
from service.events import EventBus
from service.metrics import Metrics, version_label
from service.store.models import Conversation
from service.store.repository import ConversationStore


class ConversationService:
    def __init__(
        self,
        store: ConversationStore,
        catalog: ProductCatalog,
        events: EventBus,
        metrics: Metrics,
        versions: VersionChooser | None = None,
    ) -> None:
        self._versions = versions or FixedVersion(None)
        self._store = store
        self._catalog = catalog
        self._events = events
        self._metrics = metrics

    async def open(self, product: str | None, caller: Caller) -> Conversation:
        product = offered_product(self._catalog, product, caller)
        return await asyncio.to_thread(
            self._store.start_conversation,
            caller.tenant_id,
            product,
            caller.channel,
            caller.customer_ref,
            caller.widget_key,
        )

    async def request_handoff(
        self, tenant_id: str, conversation_id: str, reason: str, widget_key: str | None = None
    ) -> Conversation:
        """A human takes over because the customer or the helpdesk asked for one."""
        row = await asyncio.to_thread(
            self._store.request_handoff, tenant_id, conversation_id, reason, widget_key
        )
        version = version_label(*self._versions.choose(tenant_id, conversation_id))
        labels = (tenant_id, row.product or "", version, row.channel, "requested")
        self._metrics.handoffs.labels(*labels).inc()
        await self._events.publish(tenant_id, "conversation.handoff", _data(row))
        return row

    async def close(self, tenant_id: str, conversation_id: str) -> Conversation:
        before = await asyncio.to_thread(self._store.get_conversation, tenant_id, conversation_id)
        row = await asyncio.to_thread(self._store.close, tenant_id, conversation_id)
        if before.status != "resolved":
            await self._events.publish(tenant_id, "conversation.resolved", _data(row))
        return row


def _data(row: Conversation) -> dict[str, object]:
    return {
        "conversation_id": row.id,
        "status": row.status,
        "reason": row.handoff_reason,
        "product": row.product,
        "channel": row.channel,
        "customer_ref": row.customer_ref,
    }
