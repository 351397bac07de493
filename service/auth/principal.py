"""Who is calling: the tenant, the key and what it may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CallerKind = Literal["secret", "publishable", "operator"]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    tenant_id: str
    kind: CallerKind
    scopes: frozenset[str]
    key_id: str | None = None
    origin: str | None = None

    @property
    def channel(self) -> str:
        """Where conversations this caller starts come from."""
        return "widget" if self.kind == "publishable" else "api"

    @property
    def label(self) -> str:
        """A name for audit trails: the key id, or `operator`."""
        return self.key_id or self.kind

    @property
    def conversation_key(self) -> str | None:
        """The key a caller's conversations are bound to: a widget key sees only those it
        started; None for secret and operator keys, which see the whole tenant's."""
        return self.key_id if self.kind == "publishable" else None

    def allows(self, *scopes: str) -> bool:
        return bool(self.scopes.intersection(scopes))
