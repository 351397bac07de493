"""Codes and model numbers in a question, and chunks whose heading names a different one.

A question about error E4 retrieves the section "Fixing E5" as readily as "Fixing E4": the words
around the code are the same, and neither the embedder nor BM25 treats E4 and E5 as distinct
things. A small model given both then mixes their meanings. Identifiers of one family share a
letter prefix (E4/E5, C3-E42/C3-E40, S9/S10), so a chunk whose heading names a member of a family
the question names, but not the one asked about, is moved behind the others. Chunks whose heading
names no identifier of that family (an "Error codes" table, "Installation") keep their place.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, TypeVar

IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z]{1,2})-?(\d{1,4})(?![\w.])")


class Headed(Protocol):
    @property
    def heading_path(self) -> list[str]: ...

    @property
    def title(self) -> str: ...


H = TypeVar("H", bound=Headed)


def identifiers(text: str) -> dict[str, set[str]]:
    """Identifiers in a text by family: "E4 then C3-E42" → {"E": {"E4", "E42"}, "C": {"C3"}}."""
    found: dict[str, set[str]] = {}
    for prefix, number in IDENTIFIER.findall(text):
        family = prefix.upper()
        found.setdefault(family, set()).add(f"{family}{int(number)}")
    return found


def names_other(heading: str, asked: dict[str, set[str]]) -> bool:
    """Does the heading name a member of an asked family, and none that was asked?"""
    named = identifiers(heading)
    return any(family in named and not named[family] & codes for family, codes in asked.items())


def demote_other_identifiers(asked: dict[str, set[str]], hits: Sequence[H]) -> list[H]:
    """Hits in their order, those whose heading names another identifier of an asked family
    (`identifiers(question)`) last."""
    other = [names_other(_heading(h), asked) for h in hits]
    return [h for h, o in zip(hits, other, strict=True) if not o] + [
        h for h, o in zip(hits, other, strict=True) if o
    ]


def _heading(hit: Headed) -> str:
    return " ".join([hit.title, *hit.heading_path])
