"""What an answer evaluation asks: questions with reference answers, from two kinds of folder.

- An eval-set folder (docs.jsonl + questions.jsonl, ../shared/data/README.md): each question has
  a reference `answer`, gold `doc_ids`, optional `product`, `history` and `type`
  (`out_of_scope` questions should be refused). Prompted variants retrieve from the set's docs.
- A dataset version folder from `tunedesk dataset build` (held-out rated transcripts): each row of
  `sft/eval.jsonl` is the exact prompt the service rendered and the answer rated good (or the
  agent's correction). Prompted variants use that prompt; the gold sources are the ones the
  reference answer cites.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from service.engines.base import ChatMessage

Kind = Literal["in_scope", "out_of_scope", "handoff"]
SOURCE_LINE = re.compile(r"^\[(\d{1,2})\] (.+)$", re.MULTILINE)


class EvalSetError(ValueError):
    """A folder that is neither an eval set nor a dataset version; the message says why."""


@dataclass(frozen=True)
class AnswerCase:
    """One question to answer, its reference answer and what counts as its gold sources."""

    id: str
    question: str
    reference: str
    product: str | None = None
    kind: Kind = "in_scope"
    history: list[ChatMessage] = field(default_factory=list)
    gold_sources: list[str] = field(default_factory=list)
    prompt: list[ChatMessage] | None = None  # the service's recorded prompt, when there is one
    prompt_sources: list[str] = field(default_factory=list)  # what [1], [2]... are in `prompt`


@dataclass(frozen=True)
class CaseSet:
    """The cases and where they came from."""

    kind: Literal["eval-set", "dataset"]
    path: Path
    cases: list[AnswerCase]
    left_out: list[str] = field(default_factory=list)  # asked in the training data

    @property
    def needs_index(self) -> bool:
        return self.kind == "eval-set"


def load_cases(
    path: Path,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    exclude_seen: Path | None = None,
) -> CaseSet:
    """The questions of an eval-set folder or of a dataset version's held-out split: all, the
    first `limit`, or a seeded `sample` with every kind of question in its share; without
    those asked word for word in `exclude_seen`'s train split."""
    if (path / "questions.jsonl").is_file():
        cases, kind = _eval_set_cases(path / "questions.jsonl"), "eval-set"
    elif (path / "sft" / "eval.jsonl").is_file():
        cases, kind = _dataset_cases(path / "sft" / "eval.jsonl"), "dataset"
    else:
        raise EvalSetError(
            f"{path} holds neither questions.jsonl (an eval set) nor sft/eval.jsonl "
            "(a dataset version from `tunedesk dataset build`)"
        )
    if not cases:
        raise EvalSetError(f"{path}: no question with a reference answer")
    left_out: list[str] = []
    if exclude_seen is not None:
        cases, left_out = drop_seen(cases, exclude_seen, path if kind == "eval-set" else None)
    chosen = stratified_sample(cases, sample, seed) if sample else cases
    return CaseSet(kind, path, chosen[:limit], left_out)  # type: ignore[arg-type]


def stratified_sample(cases: list[AnswerCase], size: int, seed: int) -> list[AnswerCase]:
    """About `size` cases, each kind in proportion (at least one of each), in file order."""
    import random

    rng = random.Random(seed)
    picked: list[int] = []
    for kind in sorted({c.kind for c in cases}):
        members = [i for i, c in enumerate(cases) if c.kind == kind]
        share = max(1, round(size * len(members) / len(cases)))
        picked += rng.sample(members, min(share, len(members)))
    return [cases[i] for i in sorted(picked)]


def _rows(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _eval_set_cases(path: Path) -> list[AnswerCase]:
    return [
        AnswerCase(
            id=str(row.get("id", n)),
            question=row["question"],
            reference=row["answer"],
            product=row.get("product") or None,
            kind=_kind(row.get("type")),
            history=[_turn(t) for t in row.get("history") or []],
            gold_sources=[str(d) for d in row.get("doc_ids") or []],
        )
        for n, row in enumerate(_rows(path))
        if row.get("answer")
    ]


def _kind(value: Any) -> Kind:
    return value if value in ("out_of_scope", "handoff") else "in_scope"


def _turn(turn: dict[str, Any]) -> ChatMessage:
    text = str(turn.get("content") or turn.get("utterance") or "")
    if turn.get("role") in ("user", "customer"):
        return {"role": "user", "content": text}
    return {"role": "assistant", "content": text}  # the eval sets' "agent"


def _dataset_cases(path: Path) -> list[AnswerCase]:
    return [_dataset_case(row) for row in _rows(path)]


def _dataset_case(row: dict[str, Any]) -> AnswerCase:
    prompt: list[ChatMessage] = row["prompt"]
    turns = [m for m in prompt if m["role"] != "system"]
    reference = "".join(m["content"] for m in row["completion"])
    sources = _numbered_sources(prompt)
    return AnswerCase(
        id=str(row.get("message_id") or row.get("id")),
        question=turns[-1]["content"],
        reference=reference,
        product=row.get("product"),
        history=turns[:-1],
        gold_sources=cited_sources(reference, sources),
        prompt=prompt,
        prompt_sources=sources,
    )


def _numbered_sources(prompt: list[ChatMessage]) -> list[str]:
    """The heading of each numbered source in the prompt's last system message, in order."""
    systems = [m["content"] for m in prompt if m["role"] == "system"]
    headings: list[str] = []
    for number, heading in SOURCE_LINE.findall(systems[-1]) if systems else []:
        if int(number) == len(headings) + 1:  # "[n] " inside a chunk's text is not a source
            headings.append(heading)
    return headings


def cited_sources(answer: str, sources: list[str]) -> list[str]:
    """The sources an answer cites, by the numbers it uses, first citation first."""
    from service.prompting.builder import cited_numbers

    return [sources[n - 1] for n in cited_numbers(answer, len(sources))]


def drop_seen(
    cases: list[AnswerCase], dataset_dir: Path, set_dir: Path | None = None
) -> tuple[list[AnswerCase], list[str]]:
    """Leave out questions asked word for word in a dataset version's train split (a tuned
    model has seen their answers) and, for an eval set the dataset mixed in, every question about
    a document it trained on; returns the kept cases and the ids left out."""
    from training.public_sets import trained_documents

    path = dataset_dir / "sft" / "train.jsonl"
    if not path.is_file():
        raise EvalSetError(f"{path} not found: --exclude-seen takes a dataset version folder")
    seen = {
        _folded(m["content"]) for row in _rows(path) for m in row["prompt"] if m["role"] == "user"
    }
    manifest = dataset_dir / "manifest.json"
    trained = (
        trained_documents(json.loads(manifest.read_text(encoding="utf-8")), set_dir)
        if set_dir is not None and manifest.is_file()
        else set()
    )

    def was_seen(case: AnswerCase) -> bool:
        return _folded(case.question) in seen or bool(trained & set(case.gold_sources))

    return [c for c in cases if not was_seen(c)], [c.id for c in cases if was_seen(c)]


def _folded(text: str) -> str:
    return " ".join(text.lower().split())
