"""Stop strings while streaming: where the first one starts, and how much text to hold back
because it could still become one. Both engines that check stop strings themselves use this."""

from __future__ import annotations

from collections.abc import Sequence


def find_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """(index, stop string) of the earliest stop string in the text."""
    hits = [(index, stop) for stop in stops if (index := text.find(stop)) >= 0]
    return min(hits, default=None)


def partial_stop(text: str, stops: Sequence[str], *, fold_case: bool = False) -> int:
    """How many characters at the end of the text are the beginning of a stop string."""
    tail = text.lower() if fold_case else text
    longest = 0
    for stop in stops:
        start = stop.lower() if fold_case else stop
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if tail.endswith(start[:size]):
                longest = size
                break
    return longest
