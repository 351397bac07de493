"""Keyset pagination, newest first, for any table with `created_at` and a string `id`.

The cursor is the (created_at, id) of the last row of a page, base64-encoded: opaque to
clients, stable under inserts, and cheap for the database (no OFFSET).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.errors import InvalidRequest


class Row(Protocol):
    id: Any
    created_at: Any


def newest_first(
    s: Session,
    query: Select[Any],
    columns: tuple[InstrumentedAttribute[datetime], InstrumentedAttribute[str]],
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """One page of `query` and the cursor of the next page (None on the last)."""
    created, row_id = columns
    if cursor is not None:
        after_created, after_id = decode(cursor)
        query = query.where(
            or_(created < after_created, and_(created == after_created, row_id < after_id))
        )
    rows = list(s.scalars(query.order_by(created.desc(), row_id.desc()).limit(limit + 1)).all())
    page = rows[:limit]
    return page, encode(page[-1]) if len(rows) > limit else None


def encode(last: Row) -> str:
    raw = json.dumps([last.created_at.isoformat(), last.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, last_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), str(last_id)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(
            "cursor is not valid: pass the next_cursor of the previous page unchanged."
        ) from exc
