"""A span of personal data found in a text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """`kind` (EMAIL, PHONE, CARD, ADDRESS, NAME, HANDLE) at text[start:end]."""

    kind: str
    start: int
    end: int
