"""Webhook endpoints, their delivery log, replays and test events (admin scope). Thin routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import AdminCaller, ComponentsDep
from service.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
)

router = APIRouter(prefix="/v1", tags=["webhooks"])

SIGNING_DOC = (
    "Each POST carries `Tunedesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "
    '"<t>.<raw body>">` keyed with the secret, plus `Tunedesk-Event` and `Tunedesk-Delivery`. '
    "A 2xx answer means delivered; timeouts, network errors, 429 and 5xx are retried with "
    "exponential backoff; other statuses fail the delivery at once."
)


@router.post(
    "/webhooks",
    response_model=WebhookCreated,
    status_code=201,
    summary="Register a webhook endpoint (its secret is shown once)",
    description=SIGNING_DOC,
)
async def create_webhook(
    body: WebhookCreate, principal: AdminCaller, components: ComponentsDep
) -> WebhookCreated:
    row = await components.webhooks.create_endpoint(
        principal.tenant_id, str(body.url), list(body.events), body.description
    )
    return WebhookCreated.of(row)


@router.get("/webhooks", response_model=list[WebhookOut], summary="List webhook endpoints")
async def list_webhooks(principal: AdminCaller, components: ComponentsDep) -> list[WebhookOut]:
    rows = await components.webhooks.list_endpoints(principal.tenant_id)
    return [WebhookOut.of(r) for r in rows]


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut, summary="A webhook endpoint")
async def get_webhook(
    webhook_id: str, principal: AdminCaller, components: ComponentsDep
) -> WebhookOut:
    return WebhookOut.of(await components.webhooks.get_endpoint(principal.tenant_id, webhook_id))


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    summary="Delete a webhook endpoint (its unsent deliveries fail; the log is kept)",
)
async def delete_webhook(
    webhook_id: str, principal: AdminCaller, components: ComponentsDep
) -> None:
    await components.webhooks.delete_endpoint(principal.tenant_id, webhook_id)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    summary="An endpoint's deliveries, newest first",
)
async def list_deliveries(
    webhook_id: str,
    principal: AdminCaller,
    components: ComponentsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> DeliveryPage:
    rows, next_cursor = await components.webhooks.list_deliveries(
        principal.tenant_id, webhook_id, limit, cursor
    )
    return DeliveryPage(data=[DeliveryOut.of(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/webhooks/{webhook_id}/test",
    response_model=DeliveryOut,
    status_code=202,
    summary="Send a signed `webhook.test` event to the endpoint",
)
async def send_test(
    webhook_id: str, principal: AdminCaller, components: ComponentsDep
) -> DeliveryOut:
    row = await components.webhooks.send_test(principal.tenant_id, webhook_id)
    return DeliveryOut.of(row)


@router.get("/webhook-deliveries/{delivery_id}", response_model=DeliveryOut, summary="A delivery")
async def get_delivery(
    delivery_id: str, principal: AdminCaller, components: ComponentsDep
) -> DeliveryOut:
    return DeliveryOut.of(await components.webhooks.get_delivery(principal.tenant_id, delivery_id))


@router.post(
    "/webhook-deliveries/{delivery_id}/replay",
    response_model=DeliveryOut,
    status_code=202,
    summary="Send a delivery's payload again, as a new delivery with the same event id",
)
async def replay_delivery(
    delivery_id: str, principal: AdminCaller, components: ComponentsDep
) -> DeliveryOut:
    row = await components.webhooks.replay(principal.tenant_id, delivery_id)
    return DeliveryOut.of(row)
