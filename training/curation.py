"""Scrub, de-duplicate and split derived examples.

Scrubbing touches the customer and assistant turns (the question, the history, the answers);
the system messages come from the knowledge base and templates, not from customers, and are
kept as they are so the prompt still matches what the service renders.

The split is by conversation: a conversation's examples all land on one side. A preference
pair built from two conversations ties them together, so they land on the same side too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from service.engines.base import ChatMessage
from training.examples import PreferencePair, SFTExample, prompt_key
from training.pii import Scrubber

Example = TypeVar("Example", SFTExample, PreferencePair)


@dataclass
class Split:
    """Examples on each side, and the conversations each side holds."""

    train: list[SFTExample] = field(default_factory=list)
    eval: list[SFTExample] = field(default_factory=list)
    train_pairs: list[PreferencePair] = field(default_factory=list)
    eval_pairs: list[PreferencePair] = field(default_factory=list)
    train_conversations: list[str] = field(default_factory=list)
    eval_conversations: list[str] = field(default_factory=list)


def scrub_prompt(messages: Sequence[ChatMessage], scrubber: Scrubber) -> list[ChatMessage]:
    return [
        m if m["role"] == "system" else {"role": m["role"], "content": scrubber.scrub(m["content"])}
        for m in messages
    ]


def scrub_sft(example: SFTExample, scrubber: Scrubber) -> SFTExample:
    return replace(
        example,
        prompt=scrub_prompt(example.prompt, scrubber),
        completion=scrubber.scrub(example.completion),
    )


def scrub_pair(pair: PreferencePair, scrubber: Scrubber) -> PreferencePair:
    return replace(
        pair,
        prompt=scrub_prompt(pair.prompt, scrubber),
        chosen=scrubber.scrub(pair.chosen),
        rejected=scrubber.scrub(pair.rejected),
    )


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def sft_key(example: SFTExample) -> str:
    return prompt_key(example.prompt) + "|" + _normal(example.completion)


def pair_key(pair: PreferencePair) -> str:
    return "|".join([prompt_key(pair.prompt), _normal(pair.chosen), _normal(pair.rejected)])


def deduplicate(
    items: Iterable[Example], key: Callable[[Example], str]
) -> tuple[list[Example], int]:
    """The first of each group of equal items (whitespace and case folded), and how many went."""
    seen: set[str] = set()
    kept: list[Example] = []
    dropped = 0
    for item in items:
        k = key(item)
        if k in seen:
            dropped += 1
            continue
        seen.add(k)
        kept.append(item)
    return kept, dropped


class _Groups:
    """Union-find over conversation ids."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self._parent.setdefault(item, item)
        while self._parent[item] != item:
            self._parent[item] = self._parent[self._parent[item]]
            item = self._parent[item]
        return item

    def join(self, items: Sequence[str]) -> None:
        roots = [self.find(i) for i in items]
        for root in roots[1:]:
            self._parent[root] = roots[0]

    def groups(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for item in list(self._parent):
            found.setdefault(self.find(item), []).append(item)
        return found


def split_by_conversation(
    sft: Sequence[SFTExample],
    pairs: Sequence[PreferencePair],
    eval_fraction: float,
    seed: int,
) -> Split:
    """Whole conversation groups to eval (a seeded, stable choice), the rest to train."""
    groups = _Groups()
    for example in sft:
        groups.find(example.conversation_id)
    for pair in pairs:
        groups.join(pair.conversation_ids)
    members = groups.groups()
    order = sorted(members, key=lambda root: _rank(seed, sorted(members[root])[0]))
    n_eval = round(len(order) * eval_fraction)
    if eval_fraction > 0 and len(order) > 1:
        n_eval = max(1, min(n_eval, len(order) - 1))
    held_out = {c for root in order[:n_eval] for c in members[root]}
    return Split(
        train=[e for e in sft if e.conversation_id not in held_out],
        eval=[e for e in sft if e.conversation_id in held_out],
        train_pairs=[p for p in pairs if p.conversation_ids[0] not in held_out],
        eval_pairs=[p for p in pairs if p.conversation_ids[0] in held_out],
        train_conversations=sorted(c for g in members.values() for c in g if c not in held_out),
        eval_conversations=sorted(held_out),
    )


def _rank(seed: int, conversation_id: str) -> str:
    return hashlib.sha256(f"{seed}:{conversation_id}".encode()).hexdigest()
