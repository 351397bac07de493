"""Webhook endpoints and deliveries: the only code that reads and writes them.

Deliveries are an outbox: a row is written when an event happens and stays `pending` until an
attempt succeeds (`delivered`) or attempts run out (`failed`). Whoever sends a row first claims
it by pushing its `next_attempt_at` past the attempt's deadline, so two replicas never send the
same attempt, and a process that dies mid-attempt leaves a row that becomes due again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.errors import NotFound
from service.events import Event
from service.store import pagination
from service.store.models import WebhookDelivery, WebhookEndpoint, new_id, utcnow
from service.webhooks.signing import new_secret


class WebhookNotFound(NotFound):
    code = "webhook_not_found"


class DeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"


@dataclass(frozen=True)
class Attempt:
    """How one attempt went, and when to try again (None: never)."""

    status: str  # pending | delivered | failed
    status_code: int | None
    error: str | None
    next_attempt_at: datetime | None


class WebhookStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create_endpoint(
        self, tenant_id: str, url: str, events: list[str], description: str | None
    ) -> WebhookEndpoint:
        """A new endpoint with a fresh secret."""
        row = WebhookEndpoint(
            tenant_id=tenant_id,
            url=url,
            events=events,
            secret=new_secret(),
            description=description,
            active=True,
        )
        with self._sessions.begin() as s:
            s.add(row)
        return row

    def list_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        query = (
            select(WebhookEndpoint)
            .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.active.is_(True))
            .order_by(WebhookEndpoint.created_at)
        )
        with self._sessions() as s:
            return list(s.scalars(query).all())

    def get_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
        with self._sessions() as s:
            return _owned_endpoint(s, tenant_id, endpoint_id)

    def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> None:
        """Stop sending to the endpoint. Its delivery log is kept; unsent deliveries fail."""
        with self._sessions.begin() as s:
            _owned_endpoint(s, tenant_id, endpoint_id).active = False
            s.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.endpoint_id == endpoint_id,
                    WebhookDelivery.status == "pending",
                )
                .values(status="failed", next_attempt_at=None, last_error="endpoint deleted")
            )

    def record_event(self, event: Event) -> list[WebhookDelivery]:
        """One pending delivery per active endpoint of the tenant that listens to the event."""
        listening = [e for e in self.list_endpoints(event.tenant_id) if event.type in e.events]
        payload = envelope(event)
        rows = [_pending(e.tenant_id, e.id, event.type, payload) for e in listening]
        with self._sessions.begin() as s:
            s.add_all(rows)
        return rows

    def record_for(
        self, tenant_id: str, endpoint_id: str, event_type: str, payload: dict[str, Any]
    ) -> WebhookDelivery:
        """A pending delivery of `payload` to one endpoint (a test event, a replay)."""
        row = _pending(tenant_id, endpoint_id, event_type, payload)
        with self._sessions.begin() as s:
            _owned_endpoint(s, tenant_id, endpoint_id)
            s.add(row)
        return row

    def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[WebhookDelivery]:
        """Pending deliveries whose time has come, each claimed until `now + lease`."""
        query = (
            select(WebhookDelivery)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
        with self._sessions.begin() as s:
            due = list(s.scalars(query).all())
            return [row for row in due if _claim(s, row, now + lease)]

    def endpoint_for(self, delivery: WebhookDelivery) -> WebhookEndpoint:
        with self._sessions() as s:
            return s.get_one(WebhookEndpoint, delivery.endpoint_id)

    def record_attempt(self, delivery_id: str, attempt: Attempt) -> WebhookDelivery:
        with self._sessions.begin() as s:
            row = s.get_one(WebhookDelivery, delivery_id)
            row.attempts += 1
            row.status = attempt.status
            row.last_status_code = attempt.status_code
            row.last_error = attempt.error
            row.next_attempt_at = attempt.next_attempt_at
            if attempt.status == "delivered":
                row.delivered_at = utcnow()
        return row

    def get_delivery(self, tenant_id: str, delivery_id: str) -> WebhookDelivery:
        with self._sessions() as s:
            row = s.get(WebhookDelivery, delivery_id)
        if row is None or row.tenant_id != tenant_id:
            raise DeliveryNotFound(f"No webhook delivery with id {delivery_id!r}.")
        return row

    def list_deliveries(
        self, tenant_id: str, endpoint_id: str, limit: int, cursor: str | None
    ) -> tuple[list[WebhookDelivery], str | None]:
        """Newest first; the cursor continues after the last delivery of the page."""
        self.get_endpoint(tenant_id, endpoint_id)
        query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        columns = (WebhookDelivery.created_at, WebhookDelivery.id)
        with self._sessions() as s:
            return pagination.newest_first(s, query, columns, limit, cursor)


def envelope(event: Event) -> dict[str, Any]:
    """The JSON body receivers get: the event id stays the same across retries and replays."""
    body = {
        "id": event.id,
        "type": event.type,
        "created_at": event.created_at.isoformat(),
        "tenant_id": event.tenant_id,
        "data": event.data,
    }
    return dict(json.loads(json.dumps(body, default=str)))


def _pending(
    tenant_id: str, endpoint_id: str, event_type: str, payload: dict[str, Any]
) -> WebhookDelivery:
    return WebhookDelivery(
        id=new_id(),
        tenant_id=tenant_id,
        endpoint_id=endpoint_id,
        event=event_type,
        payload=payload,
        status="pending",
        attempts=0,
        next_attempt_at=utcnow(),
        created_at=utcnow(),
    )


def _owned_endpoint(s: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    row = s.get(WebhookEndpoint, endpoint_id)
    if row is None or row.tenant_id != tenant_id or not row.active:
        raise WebhookNotFound(f"No webhook endpoint with id {endpoint_id!r}.")
    return row


def _claim(s: Session, row: WebhookDelivery, until: datetime) -> bool:
    """Move the row's next attempt to `until` unless someone else moved it first."""
    claimed = s.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == row.id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at == row.next_attempt_at,
        )
        .values(next_attempt_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]
