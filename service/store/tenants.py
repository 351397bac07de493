"""Tenants and their API keys: the only code that reads and writes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.auth.keys import KeyKind, generate, hash_key
from service.errors import Conflict, KeyNotFound, TenantNotFound
from service.store.models import ApiKey, Tenant, as_utc, utcnow

TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is a hint, not an audit log: write it rarely


@dataclass(frozen=True)
class KeySpec:
    """What a new key may do."""

    name: str
    kind: KeyKind
    scopes: list[str]
    allowed_origins: list[str] | None = None


class TenantStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create_tenant(self, slug: str, name: str, products: list[str] | None) -> Tenant:
        tenant = Tenant(slug=slug, name=name, products=products)
        try:
            with self._sessions.begin() as s:
                s.add(tenant)
        except IntegrityError as exc:
            raise Conflict(f"A tenant with slug {slug!r} already exists.") from exc
        return tenant

    def get_tenant(self, tenant_id: str) -> Tenant:
        with self._sessions() as s:
            tenant = s.get(Tenant, tenant_id)
        if tenant is None:
            raise TenantNotFound(f"No tenant with id {tenant_id!r}.")
        return tenant

    def list_tenants(self) -> list[Tenant]:
        with self._sessions() as s:
            return list(s.scalars(select(Tenant).order_by(Tenant.created_at)).all())

    def create_key(self, tenant_id: str, spec: KeySpec) -> tuple[ApiKey, str]:
        """A new key; the plain text is returned here and never again."""
        self.get_tenant(tenant_id)
        new = generate(spec.kind)
        row = ApiKey(
            tenant_id=tenant_id,
            name=spec.name,
            kind=spec.kind,
            prefix=new.prefix,
            key_hash=new.key_hash,
            scopes=spec.scopes,
            allowed_origins=spec.allowed_origins,
        )
        with self._sessions.begin() as s:
            s.add(row)
        return row, new.plain

    def list_keys(self, tenant_id: str, include_revoked: bool = False) -> list[ApiKey]:
        query = select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        with self._sessions() as s:
            return list(s.scalars(query).all())

    def revoke_key(self, tenant_id: str, key_id: str) -> ApiKey:
        with self._sessions.begin() as s:
            row = self._owned_key(s, tenant_id, key_id)
            row.revoked_at = row.revoked_at or utcnow()
        return row

    def rotate_key(self, tenant_id: str, key_id: str, grace: timedelta) -> tuple[ApiKey, str]:
        """A new key with the same name, kind, scopes and origins; the old one stops working
        after the grace period (at once when it is zero)."""
        with self._sessions.begin() as s:
            old = self._owned_key(s, tenant_id, key_id)
            if old.revoked_at is not None:
                raise Conflict(f"Key {key_id!r} is revoked; create a new key instead.")
            spec = KeySpec(old.name, old.kind, old.scopes, old.allowed_origins)  # type: ignore[arg-type]
            now = utcnow()
            if grace.total_seconds() <= 0:
                old.revoked_at = now
            else:
                old.expires_at = now + grace
        row, plain = self.create_key(tenant_id, spec)
        with self._sessions.begin() as s:
            s.get_one(ApiKey, row.id).rotated_from = key_id
        row.rotated_from = key_id
        return row, plain

    def active_key(self, plain: str) -> ApiKey | None:
        """The key row for a presented key, if it exists, is not revoked and not expired."""
        with self._sessions() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plain)))
            if row is None or not _is_active(row, utcnow()):
                return None
            if row.last_used_at is None or utcnow() - as_utc(row.last_used_at) > TOUCH_EVERY:
                row.last_used_at = utcnow()
                s.commit()
            return row

    def widget_origins(self) -> set[str]:
        """Every origin some active publishable key is bound to (for CORS)."""
        query = select(ApiKey).where(ApiKey.kind == "publishable", ApiKey.revoked_at.is_(None))
        now = utcnow()
        with self._sessions() as s:
            rows = [r for r in s.scalars(query).all() if _is_active(r, now)]
        return {origin for r in rows for origin in (r.allowed_origins or [])}

    def _owned_key(self, s: Session, tenant_id: str, key_id: str) -> ApiKey:
        row = s.get(ApiKey, key_id)
        if row is None or row.tenant_id != tenant_id:
            raise KeyNotFound(f"No key with id {key_id!r}.")
        return row


def _is_active(row: ApiKey, now: datetime) -> bool:
    if row.revoked_at is not None:
        return False
    return row.expires_at is None or as_utc(row.expires_at) > now
