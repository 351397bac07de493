"""API keys: how they look, how they are made, and how they are stored (hashed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

KeyKind = Literal["secret", "publishable"]
PREFIXES: dict[KeyKind, str] = {"secret": "td_sk_", "publishable": "td_pk_"}
SECRET_SCOPES = ("chat", "agent", "admin")
WIDGET_SCOPE = "widget"


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: the plain text is returned once and never stored."""

    plain: str
    prefix: str
    key_hash: str


def generate(kind: KeyKind) -> NewKey:
    """A random key with a recognisable prefix (`td_sk_` secret, `td_pk_` publishable)."""
    plain = PREFIXES[kind] + secrets.token_urlsafe(32)
    return NewKey(plain, plain[:12], hash_key(plain))


def hash_key(plain: str) -> str:
    """SHA-256 is enough for 256-bit random keys: there is nothing to brute-force."""
    return hashlib.sha256(plain.encode()).hexdigest()


def looks_like_key(text: str) -> bool:
    return any(text.startswith(p) for p in PREFIXES.values())
