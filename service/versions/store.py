"""Model versions and their audit trail: the only code that reads and writes them.

A tenant has at most one `active` version and at most one `canary`; every change of status is
recorded as a ModelVersionEvent in the same transaction, with who made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict, InvalidRequest, NotFound
from service.store.models import ModelVersion, ModelVersionEvent, as_utc, utcnow


class ModelVersionNotFound(NotFound):
    code = "model_version_not_found"


@dataclass(frozen=True)
class NewVersion:
    """What registering a version needs."""

    name: str
    adapter: str | None
    base_model: str
    evaluation: dict[str, Any] | None = None


@dataclass(frozen=True)
class Rollback:
    """The version taken off the air and the one answering now (None: the configured default)."""

    rolled_back: ModelVersion
    restored: ModelVersion | None


class ModelVersionStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def register(self, tenant_id: str, new: NewVersion, actor: str | None) -> ModelVersion:
        """A new candidate version; its name is unique within the tenant."""
        row = ModelVersion(
            tenant_id=tenant_id,
            name=new.name,
            adapter=new.adapter,
            base_model=new.base_model,
            status="candidate",
            canary_share=0.0,
            evaluation=new.evaluation,
        )
        try:
            with self._sessions.begin() as s:
                s.add(row)
                s.flush()
                _record(s, row, "registered", actor, {"adapter": new.adapter})
        except IntegrityError as exc:
            raise Conflict(f"A model version named {new.name!r} already exists.") from exc
        return row

    def list_versions(self, tenant_id: str) -> list[ModelVersion]:
        query = (
            select(ModelVersion)
            .where(ModelVersion.tenant_id == tenant_id)
            .order_by(ModelVersion.created_at, ModelVersion.name)
        )
        with self._sessions() as s:
            return list(s.scalars(query).all())

    def get(self, tenant_id: str, name: str) -> ModelVersion:
        with self._sessions() as s:
            return _named(s, tenant_id, name)

    def serving_adapters(self) -> list[str]:
        """Adapters of every tenant's active and canary versions."""
        query = select(ModelVersion.adapter).where(
            ModelVersion.status.in_(("active", "canary")), ModelVersion.adapter.is_not(None)
        )
        with self._sessions() as s:
            return sorted({a for a in s.scalars(query).all() if a is not None})

    def retired_adapters(self) -> list[str]:
        """Adapters whose every version, in every tenant, is retired or rejected."""
        query = select(ModelVersion.adapter, ModelVersion.status).where(
            ModelVersion.adapter.is_not(None)
        )
        with self._sessions() as s:
            rows = s.execute(query).all()
        live = {a for a, status in rows if status not in ("retired", "rejected")}
        return sorted({a for a, _ in rows if a is not None and a not in live})

    def events(self, tenant_id: str, name: str) -> list[ModelVersionEvent]:
        """The version's audit trail, oldest first."""
        with self._sessions() as s:
            version = _named(s, tenant_id, name)
            query = (
                select(ModelVersionEvent)
                .where(ModelVersionEvent.version_id == version.id)
                .order_by(ModelVersionEvent.created_at, ModelVersionEvent.id)
            )
            return list(s.scalars(query).all())

    def activate(self, tenant_id: str, name: str, actor: str | None) -> ModelVersion:
        """Make `name` the tenant's active version; the one it replaces is retired."""
        with self._sessions.begin() as s:
            versions = _locked(s, tenant_id)
            row = _pick(versions, tenant_id, name)
            if row.status == "rejected":
                raise Conflict(f"Model version {name!r} was rejected; register a new candidate.")
            if row.status == "active":
                return row
            previous = _with_status(versions, "active")
            if previous is not None:
                _set_status(s, previous, "retired", actor, {"replaced_by": name})
            _make_active(s, row, "activated", actor, previous)
            return row

    def rollback(self, tenant_id: str, name: str, actor: str | None) -> Rollback:
        """Take `name` off the air: an active version gives way to the one active before it (or
        to the configured default when there was none); a canary's share drops to zero."""
        with self._sessions.begin() as s:
            versions = _locked(s, tenant_id)
            row = _pick(versions, tenant_id, name)
            if row.status == "canary":
                _set_status(s, row, "candidate", actor, {"canary_share": 0.0}, "canary_ended")
                return Rollback(row, _with_status(versions, "active"))
            if row.status != "active":
                raise Conflict(
                    f"Model version {name!r} is {row.status}: only the active or canary version "
                    "can be rolled back."
                )
            previous = _previously_active(s, versions)
            _set_status(s, row, "retired", actor, {"restored": _name(previous)}, "rolled_back")
            if previous is not None:
                _make_active(s, previous, "reactivated", actor, row)
            return Rollback(row, previous)

    def set_canary(
        self, tenant_id: str, name: str, share: float, actor: str | None
    ) -> ModelVersion:
        """Let `share` (0-1) of the tenant's conversations use `name`; 0 ends the canary."""
        if not 0.0 <= share <= 1.0:
            raise InvalidRequest(f"share must be between 0 and 1, not {share}.")
        with self._sessions.begin() as s:
            versions = _locked(s, tenant_id)
            row = _pick(versions, tenant_id, name)
            if row.status in ("active", "rejected"):
                raise Conflict(f"Model version {name!r} is {row.status}; it cannot be a canary.")
            other = _with_status(versions, "canary")
            if other is not None and other is not row:
                detail = {"canary_share": 0.0, "replaced_by": name}
                _set_status(s, other, "candidate", actor, detail, "canary_ended")
            if share == 0.0:
                _set_status(s, row, "candidate", actor, {"canary_share": 0.0}, "canary_ended")
            else:
                _set_status(s, row, "canary", actor, {"canary_share": share}, "canary", share)
            return row

    def reject(
        self, tenant_id: str, name: str, actor: str | None, reason: str | None = None
    ) -> ModelVersion:
        """Mark a candidate (or canary) as not to be shipped."""
        with self._sessions.begin() as s:
            row = _pick(_locked(s, tenant_id), tenant_id, name)
            if row.status in ("active", "retired"):
                raise Conflict(f"Model version {name!r} is {row.status}; roll it back instead.")
            _set_status(s, row, "rejected", actor, {"reason": reason}, "rejected")
            return row


def _named(s: Session, tenant_id: str, name: str) -> ModelVersion:
    query = select(ModelVersion).where(
        ModelVersion.tenant_id == tenant_id, ModelVersion.name == name
    )
    row = s.scalar(query)
    if row is None:
        raise ModelVersionNotFound(f"No model version named {name!r}.")
    return row


def _locked(s: Session, tenant_id: str) -> list[ModelVersion]:
    """The tenant's versions, locked (PostgreSQL) so two status changes cannot interleave."""
    query = (
        select(ModelVersion)
        .where(ModelVersion.tenant_id == tenant_id)
        .order_by(ModelVersion.created_at)
        .with_for_update()
    )
    return list(s.scalars(query).all())


def _pick(versions: list[ModelVersion], tenant_id: str, name: str) -> ModelVersion:
    for row in versions:
        if row.name == name:
            return row
    raise ModelVersionNotFound(f"No model version named {name!r}.")


def _with_status(versions: list[ModelVersion], status: str) -> ModelVersion | None:
    return next((v for v in versions if v.status == status), None)


def _activated_at(version: ModelVersion) -> datetime:
    assert version.activated_at is not None  # only versions that were active are compared
    return as_utc(version.activated_at)


def _previously_active(s: Session, versions: list[ModelVersion]) -> ModelVersion | None:
    """The retired version activated most recently, skipping versions that were themselves
    rolled back: rolling back twice goes two steps back, never forward to a bad version."""
    retired = [v for v in versions if v.status == "retired" and v.activated_at is not None]
    rolled_back = _last_action_is(s, [v.id for v in retired], "rolled_back")
    usable = [v for v in retired if v.id not in rolled_back]
    return max(usable, key=_activated_at, default=None)


def _last_action_is(s: Session, version_ids: list[str], action: str) -> set[str]:
    query = (
        select(ModelVersionEvent.version_id, ModelVersionEvent.action)
        .where(ModelVersionEvent.version_id.in_(version_ids))
        .order_by(ModelVersionEvent.created_at)
    )
    last: dict[str, str] = {}
    for version_id, event_action in s.execute(query):
        last[version_id] = event_action
    return {v for v, a in last.items() if a == action}


def _name(row: ModelVersion | None) -> str | None:
    return row.name if row is not None else None


def _make_active(
    s: Session, row: ModelVersion, action: str, actor: str | None, previous: ModelVersion | None
) -> None:
    row.activated_at = utcnow()
    _set_status(s, row, "active", actor, {"previous": _name(previous)}, action)


def _set_status(
    s: Session,
    row: ModelVersion,
    status: str,
    actor: str | None,
    detail: dict[str, Any],
    action: str | None = None,
    share: float = 0.0,
) -> None:
    detail = {"from": row.status, **detail}
    row.status = status
    row.canary_share = share
    _record(s, row, action or status, actor, detail)


def _record(
    s: Session, row: ModelVersion, action: str, actor: str | None, detail: dict[str, Any]
) -> None:
    s.add(
        ModelVersionEvent(
            tenant_id=row.tenant_id, version_id=row.id, action=action, actor=actor, detail=detail
        )
    )
