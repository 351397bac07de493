"""Request and response bodies of the webhooks API."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import AnyHttpUrl, BaseModel, Field, UrlConstraints, field_validator

from service.chat.schemas import Timestamp
from service.events import EVENT_TYPES
from service.store.models import WebhookDelivery, WebhookEndpoint

EventType = Literal["conversation.handoff", "conversation.resolved", "message.rated"]
assert set(get_args(EventType)) == set(EVENT_TYPES), "keep EventType in step with EVENT_TYPES"

URL_MAX_CHARS = 2000
WebhookUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=URL_MAX_CHARS)]
DeliveryStatus = Literal["pending", "delivered", "failed"]

EVENT_EXAMPLE: dict[str, Any] = {
    "id": "evt_5f0c9a3e2b7d4c1e8a6f0b2d4c6e8a10",
    "type": "conversation.handoff",
    "created_at": "2026-11-21T23:12:04.512000+00:00",
    "tenant_id": "default",
    "data": {
        "conversation_id": "3b1f6c0e9d2a4f7b8c5e1a0d2f4b6c8e",
        "status": "handoff",
        "reason": "customer asked for a person",
        "product": "halcyon-router-x1000",
        "channel": "api",
        "customer_ref": "ticket-4812",
    },
}


class WebhookCreate(BaseModel):
    """A URL that receives signed POSTs for the chosen events."""

    url: WebhookUrl = Field(description="http:// or https:// URL that receives the POSTs.")
    events: list[EventType] = Field(
        default=list(get_args(EventType)),
        min_length=1,
        description="Events to send (default: all).",
    )
    description: str | None = Field(default=None, max_length=500, pattern=r"^[^\x00]*$")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "url": "https://helpdesk.example.com/hooks/tunedesk",
                    "events": ["conversation.handoff", "message.rated"],
                    "description": "open a ticket when a human is needed",
                }
            ]
        }
    }

    @field_validator("url")
    @classmethod
    def _fits_storage(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(url)) > URL_MAX_CHARS:  # international hosts grow when punycode-encoded
            raise ValueError(f"URL is over {URL_MAX_CHARS} characters once normalised")
        return url

    @field_validator("events")
    @classmethod
    def _unique(cls, events: list[EventType]) -> list[EventType]:
        return list(dict.fromkeys(events))


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    created_at: Timestamp

    @classmethod
    def of(cls, row: WebhookEndpoint) -> WebhookOut:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class WebhookCreated(WebhookOut):
    """The new endpoint with its signing secret, shown this once."""

    secret: str = Field(description="HMAC-SHA256 key of the Tunedesk-Signature header.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b",
                    "url": "https://helpdesk.example.com/hooks/tunedesk",
                    "events": ["conversation.handoff", "message.rated"],
                    "description": "open a ticket when a human is needed",
                    "created_at": "2026-11-21T23:10:00+00:00",
                    "secret": "whsec_q3V9c1mJx0n8rZ2kT4yW6eA5sD7fG9hJ1kL3zX5cV7b",
                }
            ]
        }
    }

    @classmethod
    def of(cls, row: WebhookEndpoint) -> WebhookCreated:
        return cls(**WebhookOut.of(row).model_dump(), secret=row.secret)


class DeliveryOut(BaseModel):
    """One event sent to one endpoint: its status and the outcome of the last attempt."""

    id: str = Field(description="Also sent as the Tunedesk-Delivery header.")
    endpoint_id: str
    event: str
    event_id: str = Field(description="The payload's id: the same for retries and replays.")
    status: DeliveryStatus
    attempts: int
    next_attempt_at: Timestamp | None = Field(description="When the next attempt is due.")
    last_status_code: int | None
    last_error: str | None
    created_at: Timestamp
    delivered_at: Timestamp | None
    payload: dict[str, Any] = Field(description="The JSON body receivers get.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "c4d5e6f7a8b94c0d1e2f3a4b5c6d7e8f",
                    "endpoint_id": "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b",
                    "event": "conversation.handoff",
                    "event_id": EVENT_EXAMPLE["id"],
                    "status": "delivered",
                    "attempts": 2,
                    "next_attempt_at": None,
                    "last_status_code": 200,
                    "last_error": None,
                    "created_at": "2026-11-21T23:12:04.530000+00:00",
                    "delivered_at": "2026-11-21T23:12:36.104000+00:00",
                    "payload": EVENT_EXAMPLE,
                }
            ]
        }
    }

    @classmethod
    def of(cls, row: WebhookDelivery) -> DeliveryOut:
        fields = {name: getattr(row, name) for name in cls.model_fields if hasattr(row, name)}
        return cls(**fields, event_id=str(row.payload.get("id", "")))


class DeliveryPage(BaseModel):
    """One page, newest first; pass next_cursor as `cursor` for the next page."""

    data: list[DeliveryOut]
    next_cursor: str | None
