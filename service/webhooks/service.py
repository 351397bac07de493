"""Webhooks as the routes see them: endpoints, the delivery log, replays and test events."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker

from service.config import WebhookSettings
from service.events import Event, EventBus
from service.metrics import Metrics
from service.store.models import WebhookDelivery, WebhookEndpoint
from service.webhooks.dispatcher import WebhookDispatcher
from service.webhooks.store import WebhookStore, envelope
from service.webhooks.targets import TargetPolicy

TEST_EVENT = "webhook.test"


class WebhookService:
    """A tenant's webhook endpoints and deliveries; the dispatcher does the sending."""

    def __init__(
        self, store: WebhookStore, dispatcher: WebhookDispatcher, targets: TargetPolicy
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._targets = targets

    async def start(self) -> None:
        await self._dispatcher.start()

    async def aclose(self) -> None:
        await self._dispatcher.aclose()

    async def create_endpoint(
        self, tenant_id: str, url: str, events: list[str], description: str | None
    ) -> WebhookEndpoint:
        """A new endpoint; a URL that is or resolves to a non-public address is refused."""
        await self._targets.check(url)
        return await asyncio.to_thread(
            self._store.create_endpoint, tenant_id, url, events, description
        )

    async def list_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        return await asyncio.to_thread(self._store.list_endpoints, tenant_id)

    async def get_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
        return await asyncio.to_thread(self._store.get_endpoint, tenant_id, endpoint_id)

    async def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> None:
        await asyncio.to_thread(self._store.delete_endpoint, tenant_id, endpoint_id)

    async def list_deliveries(
        self, tenant_id: str, endpoint_id: str, limit: int, cursor: str | None
    ) -> tuple[list[WebhookDelivery], str | None]:
        return await asyncio.to_thread(
            self._store.list_deliveries, tenant_id, endpoint_id, limit, cursor
        )

    async def get_delivery(self, tenant_id: str, delivery_id: str) -> WebhookDelivery:
        return await asyncio.to_thread(self._store.get_delivery, tenant_id, delivery_id)

    async def replay(self, tenant_id: str, delivery_id: str) -> WebhookDelivery:
        """Send a delivery's payload again (same event id) as a new delivery with fresh retries."""
        original = await self.get_delivery(tenant_id, delivery_id)
        row = await asyncio.to_thread(
            self._store.record_for,
            tenant_id,
            original.endpoint_id,
            original.event,
            original.payload,
        )
        self._dispatcher.wake()
        return row

    async def send_test(self, tenant_id: str, endpoint_id: str) -> WebhookDelivery:
        """A `webhook.test` event to one endpoint, whatever events it listens to."""
        event = Event(tenant_id, TEST_EVENT, {"endpoint_id": endpoint_id})
        row = await asyncio.to_thread(
            self._store.record_for, tenant_id, endpoint_id, TEST_EVENT, envelope(event)
        )
        self._dispatcher.wake()
        return row


def build_webhooks(
    sessions: sessionmaker[Session], events: EventBus, settings: WebhookSettings, metrics: Metrics
) -> WebhookService:
    """The webhook service, its dispatcher subscribed to the app's events."""
    store = WebhookStore(sessions)
    targets = TargetPolicy(settings.allowed_hosts)
    dispatcher = WebhookDispatcher(store, settings, metrics, targets)
    events.subscribe(dispatcher.on_event)
    return WebhookService(store, dispatcher, targets)
