"""Turn a request's bearer key into a Principal, or refuse it.

Three kinds of caller: a tenant's secret key (scoped: chat, agent, admin), a tenant's
publishable widget key (only from its allowed origins), and the operator's admin key
(TUNEDESK_ADMIN_API_KEY), which may act for any tenant named in the `Tunedesk-Tenant` header.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from fastapi import Request

from service.auth.keys import SECRET_SCOPES, WIDGET_SCOPE
from service.auth.principal import Principal
from service.config import Settings
from service.errors import Forbidden, Unauthorized
from service.ratelimit import RateLimiter
from service.store.models import DEFAULT_TENANT_ID, ApiKey
from service.store.tenants import TenantStore

TENANT_HEADER = "Tunedesk-Tenant"
OPERATOR_SCOPES = frozenset((*SECRET_SCOPES, "operator"))


class Authenticator:
    def __init__(self, settings: Settings, tenants: TenantStore, limiter: RateLimiter) -> None:
        self._operator_key = settings.admin_api_key
        self._tenants = tenants
        self._limiter = limiter

    def authenticate(self, request: Request) -> Principal:
        """The caller of this request; rate limits are counted on the way."""
        self._limiter.hit("ip", client_ip(request))
        presented = _bearer(request)
        if self._is_operator(presented):
            return self._operator(request)
        row = self._tenants.active_key(presented)
        if row is None:
            raise Unauthorized("Unknown, revoked or expired API key.")
        self._limiter.hit("key", row.id)
        if row.kind == "publishable":
            return _widget_principal(row, request_origin(request))
        return Principal(row.tenant_id, "secret", frozenset(row.scopes), key_id=row.id)

    def _is_operator(self, presented: str) -> bool:
        key = self._operator_key
        return key is not None and hmac.compare_digest(
            presented.encode(), key.get_secret_value().encode()
        )

    def _operator(self, request: Request) -> Principal:
        tenant_id = request.headers.get(TENANT_HEADER) or DEFAULT_TENANT_ID
        self._tenants.get_tenant(tenant_id)
        return Principal(tenant_id, "operator", OPERATOR_SCOPES)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send an API key as `Authorization: Bearer <key>`.")
    return token.strip()


def _widget_principal(row: ApiKey, origin: str | None) -> Principal:
    allowed = row.allowed_origins or []
    if origin is None or origin not in allowed:
        raise Forbidden(
            f"This publishable key only works from its allowed origins ({', '.join(allowed)}); "
            f"the request came from {origin or 'no origin'}."
        )
    return Principal(
        row.tenant_id, "publishable", frozenset({WIDGET_SCOPE}), key_id=row.id, origin=origin
    )


def request_origin(request: Request) -> str | None:
    """The page's origin: the Origin header, or for same-origin GETs (which carry none) the
    origin of the Referer."""
    origin = request.headers.get("origin")
    if origin:
        return origin.rstrip("/")
    referer = urlsplit(request.headers.get("referer", ""))
    return f"{referer.scheme}://{referer.netloc}" if referer.scheme and referer.netloc else None


def client_ip(request: Request) -> str:
    """The peer address (a proxy in front should be trusted through uvicorn's
    --forwarded-allow-ips, which rewrites it)."""
    return request.client.host if request.client else "unknown"
