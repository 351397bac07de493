"""A small HTTP client of the model-version API, for `tunedesk models` and `tunedesk publish`.

The commands talk to the running service rather than to its database: only the service can
hot-load an adapter into its engine and drop its cached choice of version, and going through
the API records the key that made each change in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from service.auth.authenticate import TENANT_HEADER
from service.config import Settings


class ServiceError(RuntimeError):
    """The service refused a request or could not be reached."""


@dataclass(frozen=True)
class Connection:
    """Where the service is and which key to send."""

    url: str
    api_key: str
    tenant: str | None = None  # sent as Tunedesk-Tenant (honoured for the operator key)

    @classmethod
    def resolve(
        cls, settings: Settings, url: str | None, api_key: str | None, tenant: str | None
    ) -> Connection:
        """Explicit values, else the service's own address and the operator key."""
        operator = settings.admin_api_key.get_secret_value() if settings.admin_api_key else None
        key = api_key or operator
        if not key:
            raise ServiceError(
                "No API key: pass --api-key (a tenant key with the admin scope), set "
                "TUNEDESK_API_KEY, or set TUNEDESK_ADMIN_API_KEY (the operator key)."
            )
        return cls(url or f"http://{settings.host}:{settings.port}", key, tenant)

    def client(self, timeout_s: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if self.tenant:
            headers[TENANT_HEADER] = self.tenant
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)


class Reply(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def is_error(self) -> bool: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


class Requester(Protocol):
    """What the client needs of an HTTP client: httpx.Client, or Starlette's TestClient."""

    def request(self, method: str, url: str, *, json: Any = None) -> Reply: ...


class ModelsClient:
    """The /v1/models endpoints; every method returns the response's JSON."""

    def __init__(self, http: Requester) -> None:
        self._http = http

    def versions(self) -> dict[str, Any]:
        """`{"data": [version, ...], "default_adapter": ...}`."""
        return dict(self._call("GET", "/v1/models"))

    def active(self) -> dict[str, Any] | None:
        """The tenant's active version, or None (then `default_adapter` answers)."""
        return next((v for v in self.versions()["data"] if v["status"] == "active"), None)

    def register(
        self, name: str, adapter: str | None, evaluation: dict[str, Any] | None
    ) -> dict[str, Any]:
        body = {"name": name, "adapter": adapter, "evaluation": evaluation}
        return self._call("POST", "/v1/models", body)

    def activate(self, name: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/models/{name}/activate")

    def canary(self, name: str, share: float) -> dict[str, Any]:
        return self._call("POST", f"/v1/models/{name}/canary", {"share": share})

    def rollback(self, name: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/models/{name}/rollback")

    def events(self, name: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/v1/models/{name}/events"))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ServiceError(f"The service is unreachable ({method} {path}): {exc}") from exc
        if response.is_error:
            raise ServiceError(f"{method} {path} → {response.status_code}: {_message(response)}")
        return response.json()


def _message(response: Reply) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text
