"""Webhook signatures: what tunedesk sends, and `verify` for receivers written in Python.

Every delivery carries

    Tunedesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">
    Tunedesk-Event: conversation.handoff
    Tunedesk-Delivery: <delivery id>

The HMAC key is the endpoint's whole secret (`whsec_...`) as UTF-8 bytes. The timestamp is part
of what is signed, so a captured request cannot be replayed later than `tolerance_s` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "Tunedesk-Signature"
EVENT_HEADER = "Tunedesk-Event"
DELIVERY_HEADER = "Tunedesk-Delivery"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300.0


class InvalidSignature(ValueError):
    """The request was not signed with this secret, or was signed too long ago."""


def new_secret() -> str:
    """A fresh endpoint secret, shown to the tenant once."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The Tunedesk-Signature header value for `body` sent now (or at `timestamp`)."""
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={digest(secret, moment, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a Tunedesk-Signature header against the raw request body; raise InvalidSignature.

    Pass the body exactly as received (before any JSON parsing). Several `v1=` values are
    accepted, any one of which may match.
    """
    timestamp, candidates = _parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise InvalidSignature(f"signature timestamp is more than {tolerance_s:g} s from now")
    expected = digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise InvalidSignature("no v1 signature matches this secret and body")


def _parse(header: str) -> tuple[int, list[str]]:
    pairs = [part.strip().partition("=") for part in header.split(",")]
    timestamps = [value for key, _, value in pairs if key == "t"]
    candidates = [value for key, _, value in pairs if key == "v1"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not candidates:
        raise InvalidSignature("header is not of the form t=<unix seconds>,v1=<hex>")
    return int(timestamps[0]), candidates
