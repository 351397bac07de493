"""Idempotency keys: the first request with a key runs, retries get its stored response."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import IdempotencyInProgress, IdempotencyKeyReused
from service.store.models import IdempotencyRecord, as_utc, utcnow

KEEP_FOR = timedelta(hours=24)
STALE_AFTER = timedelta(minutes=10)  # a request that never finished (crash) frees its key


class IdempotencyStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def begin(self, tenant_id: str, key: str, request_hash: str) -> IdempotencyRecord | None:
        """Claim the key for this request (None), or return the finished earlier response."""
        self._purge_expired()
        try:
            with self._sessions.begin() as s:
                s.add(IdempotencyRecord(tenant_id=tenant_id, key=key, request_hash=request_hash))
            return None
        except IntegrityError:
            pass
        with self._sessions.begin() as s:
            row = self._row(s, tenant_id, key)
            if row is None:  # finished and purged between the two statements: start afresh
                s.add(IdempotencyRecord(tenant_id=tenant_id, key=key, request_hash=request_hash))
                return None
            return _earlier(row, request_hash)

    def complete(self, tenant_id: str, key: str, status_code: int, body: dict[str, Any]) -> None:
        with self._sessions.begin() as s:
            row = self._row(s, tenant_id, key)
            if row is not None:
                row.status_code, row.response = status_code, body

    def release(self, tenant_id: str, key: str) -> None:
        """Forget a claim whose request failed, so that a retry runs again."""
        with self._sessions.begin() as s:
            s.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.tenant_id == tenant_id,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.status_code.is_(None),
                )
            )

    def _row(self, s: Session, tenant_id: str, key: str) -> IdempotencyRecord | None:
        return s.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == key
            )
        )

    def _purge_expired(self) -> None:
        with self._sessions.begin() as s:
            s.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - KEEP_FOR)
            )


def _earlier(row: IdempotencyRecord, request_hash: str) -> IdempotencyRecord | None:
    """The finished response to replay; None when a dead claim is taken over."""
    if row.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request; "
            "use a new key for a new request."
        )
    if row.status_code is not None:
        return row
    if utcnow() - as_utc(row.created_at) > STALE_AFTER:
        row.created_at = utcnow()  # the first attempt died without an answer: run again
        return None
    raise IdempotencyInProgress(
        "A request with this Idempotency-Key is still being processed; retry shortly."
    )
