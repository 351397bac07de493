"""Replace personal data with typed placeholders before anything is written to a dataset."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from training.pii.findings import Finding
from training.pii.names import find_names
from training.pii.patterns import (
    Country,
    find_addresses,
    find_cards,
    find_emails,
    find_handles,
    find_phones,
    find_urls,
)

KINDS = ("EMAIL", "CARD", "PHONE", "ADDRESS", "NAME", "HANDLE")
# Overlapping spans are merged and named after the longest; on equal length, the earlier kind.
PRIORITY = {kind: rank for rank, kind in enumerate(KINDS)}


@dataclass(frozen=True)
class ScrubSettings:
    """What to look for, and where (phone regions and address countries, ISO codes)."""

    kinds: tuple[str, ...] = KINDS
    phone_regions: tuple[str, ...] = ("US", "GB")
    address_countries: tuple[Country, ...] = ("US", "GB", "CA")
    placeholder: str = "[{kind}]"


@dataclass
class Scrubber:
    """Finds personal data and replaces each span with a placeholder such as [EMAIL]."""

    settings: ScrubSettings = field(default_factory=ScrubSettings)
    counts: Counter[str] = field(default_factory=Counter)

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in text order."""
        detectors = self._detectors()
        urls = find_urls(text)
        spans = [
            f
            for kind in self.settings.kinds
            for f in detectors[kind](text)
            if kind == "EMAIL" or not any(_inside(f, url) for url in urls)
        ]
        return _resolve([_trimmed(text, f) for f in spans])

    def scrub(self, text: str) -> str:
        """The text with every finding replaced; counts what was replaced."""
        pieces: list[str] = []
        cursor = 0
        for finding in self.find(text):
            pieces += [text[cursor : finding.start], self._placeholder(finding.kind)]
            cursor = finding.end
            self.counts[finding.kind] += 1
        return "".join([*pieces, text[cursor:]])

    def _placeholder(self, kind: str) -> str:
        return self.settings.placeholder.format(kind=kind)

    def _detectors(self) -> dict[str, Callable[[str], list[Finding]]]:
        s = self.settings
        return {
            "EMAIL": find_emails,
            "CARD": find_cards,
            "PHONE": lambda text: find_phones(text, s.phone_regions),
            "ADDRESS": lambda text: find_addresses(text, s.address_countries),
            "NAME": find_names,
            "HANDLE": find_handles,
        }


def _resolve(spans: Sequence[Finding]) -> list[Finding]:
    """Overlapping spans merged into one (so nothing found is left), named after the longest."""
    merged: list[list[Finding]] = []
    for span in sorted((f for f in spans if f.end > f.start), key=lambda f: f.start):
        if merged and span.start < max(f.end for f in merged[-1]):
            merged[-1].append(span)
        else:
            merged.append([span])
    return [_union(group) for group in merged]


def _union(group: list[Finding]) -> Finding:
    main = min(group, key=lambda f: (-(f.end - f.start), PRIORITY[f.kind]))
    return Finding(main.kind, group[0].start, max(f.end for f in group))


def _trimmed(text: str, finding: Finding) -> Finding:
    """Without the spaces a detector took along at either end."""
    piece = text[finding.start : finding.end]
    start = finding.start + len(piece) - len(piece.lstrip())
    return Finding(finding.kind, start, max(start, finding.start + len(piece.rstrip())))


def _inside(finding: Finding, outer: Finding) -> bool:
    return outer.start <= finding.start and finding.end <= outer.end
