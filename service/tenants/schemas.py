"""Request and response bodies for tenants and API keys."""

from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, Field, model_validator

from service.auth.keys import WIDGET_SCOPE
from service.chat.schemas import Timestamp
from service.store.models import ApiKey, Tenant

SecretScope = Literal["chat", "agent", "admin"]


class TenantCreate(BaseModel):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", description="URL-safe short name")
    name: str = Field(min_length=1, max_length=200)
    products: list[str] | None = Field(
        default=None, description="Product ids this tenant offers (default: all)."
    )

    model_config = {"json_schema_extra": {"examples": [{"slug": "acme", "name": "Acme Networks"}]}}


class TenantOut(BaseModel):
    id: str
    slug: str
    name: str
    products: list[str] | None
    created_at: Timestamp

    @classmethod
    def of(cls, row: Tenant) -> TenantOut:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class KeyCreate(BaseModel):
    """A secret server key (scopes) or a publishable widget key (allowed_origins)."""

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["secret", "publishable"] = "secret"
    scopes: list[SecretScope] = Field(default=["chat"], description="Secret keys only.")
    allowed_origins: list[AnyHttpUrl] = Field(
        default=[], max_length=20, description="Publishable keys: sites the widget runs on."
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"name": "zendesk", "kind": "secret", "scopes": ["chat", "agent"]},
                {
                    "name": "website widget",
                    "kind": "publishable",
                    "allowed_origins": ["https://www.example.com"],
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _fits_kind(self) -> KeyCreate:
        if self.kind == "publishable" and not self.allowed_origins:
            raise ValueError("a publishable key needs allowed_origins (the sites it runs on)")
        if self.kind == "secret" and self.allowed_origins:
            raise ValueError("allowed_origins is only for publishable keys")
        if self.kind == "secret" and not self.scopes:
            raise ValueError("a secret key needs at least one scope: chat, agent or admin")
        return self

    def origins(self) -> list[str]:
        """Origins as browsers send them: scheme://host[:port], no path or trailing slash."""
        return [
            f"{u.scheme}://{u.host}" + (f":{u.port}" if _explicit_port(u) else "")
            for u in self.allowed_origins
        ]

    def key_scopes(self) -> list[str]:
        return [WIDGET_SCOPE] if self.kind == "publishable" else sorted(set(self.scopes))


def _explicit_port(url: AnyHttpUrl) -> bool:
    return url.port is not None and url.port != {"http": 80, "https": 443}.get(url.scheme)


class KeyRotate(BaseModel):
    grace_seconds: int = Field(
        default=0, ge=0, le=7 * 24 * 3600, description="How long the old key keeps working."
    )


class KeyOut(BaseModel):
    """A key as listed: never the key itself, only its first characters."""

    id: str
    name: str
    kind: str
    prefix: str
    scopes: list[str]
    allowed_origins: list[str] | None
    created_at: Timestamp
    last_used_at: Timestamp | None
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    rotated_from: str | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyOut:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself. Shown this once: store it now.")
