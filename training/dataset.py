"""`tunedesk dataset build`: rated transcripts → a versioned SFT + preference dataset.

Layout of one version (`<out>/v<N>/`):

    manifest.json       counts, source rating ids, file hashes, filters, where prompts came from
    sft/train.jsonl     {"prompt": [messages], "completion": [assistant message], ...}
    sft/eval.jsonl
    dpo/train.jsonl     {"prompt": [messages], "chosen": [...], "rejected": [...], ...}
    dpo/eval.jsonl

Rows are in TRL's conversational prompt-completion and preference formats, plus metadata
columns (ids, origin, provenance) that trainers ignore. A build whose content equals the newest
version writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.curation import (
    Split,
    deduplicate,
    pair_key,
    scrub_pair,
    scrub_sft,
    sft_key,
    split_by_conversation,
)
from training.examples import Derived, PreferencePair, RatingPolicy, SFTExample, derive
from training.pii import Scrubber, ScrubSettings
from training.prompts import PromptRebuilder
from training.teacher import TeacherSettings, distill
from training.transcripts import Transcript

FORMAT = "tunedesk.dataset/v1"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BuildOptions:
    """Filters and split settings; all of them are written to the manifest."""

    eval_fraction: float = 0.1
    seed: int = 0
    allow_approximate: bool = True
    policy: RatingPolicy = field(default_factory=RatingPolicy)
    scrub: ScrubSettings = field(default_factory=ScrubSettings)


@dataclass
class BuildResult:
    """Where the dataset is, its manifest, and whether this build wrote it."""

    directory: Path
    manifest: dict[str, Any]
    created: bool


def build_dataset(
    transcripts: Iterable[Transcript],
    rebuilder: PromptRebuilder,
    out_root: Path,
    options: BuildOptions,
    provenance: dict[str, Any],
    teacher: TeacherSettings | None = None,
) -> BuildResult:
    """Derive, scrub, de-duplicate, split and write a new dataset version under out_root.

    With a teacher, the prompts without a good answer get the teacher's answers as SFT
    examples (training/teacher.py); they train only: the eval split keeps human references.
    """
    counter = _CountingIterable(transcripts)
    derived = derive(counter, rebuilder, options.policy, unanswered=teacher is not None)
    distilled = distill(derived.unanswered, teacher) if teacher else None
    if distilled is not None:
        derived.sft += distilled.examples
    scrubber = Scrubber(options.scrub)
    sft, pairs, dropped = _curate(derived, options, scrubber)
    split = split_by_conversation(sft, pairs, options.eval_fraction, options.seed)
    held_out_teacher = [e for e in split.eval if e.origin == "teacher"]
    split.eval = [e for e in split.eval if e.origin != "teacher"]
    manifest = _manifest(derived, split, options, provenance, counter.count)
    manifest["counts"] |= {
        "removed": dropped | {"teacher_in_eval": len(held_out_teacher)},
        "pii_replaced": dict(sorted(scrubber.counts.items())),
    }
    if teacher is not None and distilled is not None:
        manifest["teacher"] = {
            "url": teacher.url,
            "model": distilled.model,
            "max_tokens": teacher.max_tokens,
            "temperature": teacher.temperature,
            "prompts": len(derived.unanswered),
            "counts": dict(sorted(distilled.counts.items())),
        }
    return _write_version(out_root, split, manifest)


class _CountingIterable:
    def __init__(self, items: Iterable[Transcript]) -> None:
        self._items = items
        self.count = 0

    def __iter__(self) -> Any:
        for item in self._items:
            self.count += 1
            yield item


def _curate(
    derived: Derived, options: BuildOptions, scrubber: Scrubber
) -> tuple[list[SFTExample], list[PreferencePair], dict[str, int]]:
    sft, pairs = derived.sft, derived.pairs
    approximate = 0
    if not options.allow_approximate:
        before = len(sft) + len(pairs)
        sft = [e for e in sft if e.provenance != "approximate"]
        pairs = [p for p in pairs if p.provenance != "approximate"]
        approximate = before - len(sft) - len(pairs)
    sft, sft_dupes = deduplicate([scrub_sft(e, scrubber) for e in sft], sft_key)
    pairs, pair_dupes = deduplicate([scrub_pair(p, scrubber) for p in pairs], pair_key)
    return (
        sft,
        pairs,
        {
            "approximate": approximate,
            "duplicate_sft": sft_dupes,
            "duplicate_pairs": pair_dupes,
        },
    )


def sft_row(example: SFTExample) -> dict[str, Any]:
    return {
        "id": _row_id("sft", example.message_id, example.origin),
        "conversation_id": example.conversation_id,
        "message_id": example.message_id,
        "origin": example.origin,
        "provenance": example.provenance,
        "product": example.product,
        "rating_ids": example.rating_ids,
        "prompt": example.prompt,
        "completion": [{"role": "assistant", "content": example.completion}],
    }


def pair_row(pair: PreferencePair) -> dict[str, Any]:
    return {
        "id": _row_id("dpo", *pair.message_ids, pair.origin),
        "conversation_ids": pair.conversation_ids,
        "message_ids": pair.message_ids,
        "origin": pair.origin,
        "provenance": pair.provenance,
        "product": pair.product,
        "rating_ids": pair.rating_ids,
        "prompt": pair.prompt,
        "chosen": [{"role": "assistant", "content": pair.chosen}],
        "rejected": [{"role": "assistant", "content": pair.rejected}],
    }


def _row_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _manifest(
    derived: Derived,
    split: Split,
    options: BuildOptions,
    provenance: dict[str, Any],
    transcripts: int,
) -> dict[str, Any]:
    everything = [*split.train, *split.eval]
    all_pairs = [*split.train_pairs, *split.eval_pairs]
    ratings = {r for e in everything for r in e.rating_ids} | {
        r for p in all_pairs for r in p.rating_ids
    }
    return {
        "format": FORMAT,
        "source": provenance | {"transcripts": transcripts, "rated_answers": derived.answers},
        "filters": _filters(options),
        "counts": {
            "sft": {"train": len(split.train), "eval": len(split.eval)},
            "dpo": {"train": len(split.train_pairs), "eval": len(split.eval_pairs)},
            "conversations": {
                "train": len(split.train_conversations),
                "eval": len(split.eval_conversations),
            },
            "sft_origin": dict(Counter(e.origin for e in everything)),
            "dpo_origin": dict(Counter(p.origin for p in all_pairs)),
            "prompts": dict(derived.provenance),
            "skipped_answers": dict(sorted(derived.skipped.items())),
        },
        "eval_conversations": split.eval_conversations,
        "rating_ids": sorted(ratings),
    }


def _filters(options: BuildOptions) -> dict[str, Any]:
    return {
        "eval_fraction": options.eval_fraction,
        "seed": options.seed,
        "allow_approximate_prompts": options.allow_approximate,
        "raters": list(options.policy.raters),
        "corrections_from": list(options.policy.corrections_from),
        "scrub": asdict(options.scrub),
    }


def _write_version(out_root: Path, split: Split, manifest: dict[str, Any]) -> BuildResult:
    out_root.mkdir(parents=True, exist_ok=True)
    staging = out_root / ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    files = {
        "sft/train.jsonl": [sft_row(e) for e in split.train],
        "sft/eval.jsonl": [sft_row(e) for e in split.eval],
        "dpo/train.jsonl": [pair_row(p) for p in split.train_pairs],
        "dpo/eval.jsonl": [pair_row(p) for p in split.eval_pairs],
    }
    manifest["files"] = {name: _write_jsonl(staging / name, rows) for name, rows in files.items()}
    manifest["content_sha256"] = _content_hash(manifest["files"])
    latest = latest_version(out_root)
    if (
        latest is not None
        and read_manifest(latest).get("content_sha256") == manifest["content_sha256"]
    ):
        shutil.rmtree(staging)
        return BuildResult(latest, read_manifest(latest), created=False)
    target = out_root / f"v{_version_number(latest) + 1}"
    manifest = {"version": target.name, "created_at": datetime.now(UTC).isoformat()} | manifest
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    staging.rename(target)
    return BuildResult(target, manifest, created=True)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    path.write_bytes(data)
    return {"rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()}


def _content_hash(files: dict[str, dict[str, Any]]) -> str:
    joined = "\n".join(f"{name} {info['sha256']}" for name, info in sorted(files.items()))
    return hashlib.sha256(joined.encode()).hexdigest()


def latest_version(out_root: Path) -> Path | None:
    """The newest v<N> dataset under out_root, or None."""
    versions = [p for p in out_root.glob("v*") if p.is_dir() and p.name[1:].isdigit()]
    return max(versions, key=_version_number, default=None)


def _version_number(path: Path | None) -> int:
    return int(path.name[1:]) if path is not None else 0


def read_manifest(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    return data
