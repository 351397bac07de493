"""`tunedesk eval answers`: every variant on every question, scored, as one report.

An eval-set folder is indexed into a throw-away Qdrant collection (as `tunedesk eval retrieval`
does) and the prompt layer is the service's own (`service.app.build_prompt_layer`), configured
by the same settings. A dataset version's held-out split brings its own recorded prompts.
"""

from __future__ import annotations

import asyncio
import json
import platform
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from knowledge.catalog import load_products, load_system_prompt
from service.config import Settings
from service.engines.base import Engine, SamplingParams
from training.evaluation.cases import AnswerCase, CaseSet
from training.evaluation.report import AnswerReport, answer_rows
from training.evaluation.runner import Answer, Progress, answer_all
from training.evaluation.scoring import score_answer, summarize
from training.evaluation.variants import (
    BarePlanner,
    Planner,
    PlanningLimits,
    RecordedPlanner,
    ServicePlanner,
    Variant,
    canned_replies,
)

ADAPTER_NAME = "candidate"


class AdapterMissing(ValueError):
    """Tuned variants asked for without a usable adapter."""


@dataclass
class AnswerEvalOptions:
    """What to run: variants, adapter, extra documents, few-shot examples, answer length."""

    variants: list[Variant]
    adapter: str | None = None
    extra_docs: list[Path] = field(default_factory=list)
    examples: Path | None = None
    max_new_tokens: int = 192
    guardrails: bool = True
    hygiene: bool = True  # the service's answer hygiene on model answers (what customers see)
    command: str = ""


def resolve_adapter(adapter: str | None, settings: Settings) -> Path | None:
    """An adapter folder from a path, or from a name in the engine's adapters_dir."""
    if adapter is None:
        return None
    candidates = [Path(adapter)]
    if settings.engine.adapters_dir is not None:
        candidates.append(settings.engine.adapters_dir / adapter)
    for path in candidates:
        if (path / "adapter_config.json").is_file():
            return path
    raise AdapterMissing(f"{adapter!r} is neither an adapter folder nor a name in adapters_dir")


def evaluate_answers(
    case_set: CaseSet,
    options: AnswerEvalOptions,
    settings: Settings,
    progress: Progress = lambda cases, _: cases,
    report: Callable[[str], None] = print,
) -> AnswerReport:
    """Answer every case in every variant and score the answers."""
    adapter = resolve_adapter(options.adapter, settings)
    if adapter is None and any(v.tuned for v in options.variants):
        raise AdapterMissing("tuned variants need --adapter NAME|PATH")
    with _planners(case_set, options, settings, report) as (bare, prompted):
        answers = asyncio.run(
            _answer_variants(case_set.cases, options, settings, adapter, bare, prompted, progress)
        )
    canned = canned_replies(load_system_prompt(settings.knowledge.catalog_dir))
    return _report(case_set, options, settings, adapter, answers, canned)


@contextmanager
def _planners(
    case_set: CaseSet, options: AnswerEvalOptions, settings: Settings, report: Callable[[str], None]
) -> Iterator[tuple[Planner, Planner]]:
    if not case_set.needs_index:
        yield BarePlanner(), RecordedPlanner()
        return
    if not any(v.prompted for v in options.variants):
        yield BarePlanner(), BarePlanner()
        return
    with (
        tempfile.TemporaryDirectory(prefix="tunedesk-eval-answers-") as scratch,
        service_planner(case_set.path, options, settings, Path(scratch), report) as planner,
    ):
        yield BarePlanner(), planner


@contextmanager
def service_planner(
    set_dir: Path,
    options: AnswerEvalOptions,
    settings: Settings,
    scratch: Path,
    report: Callable[[str], None],
) -> Iterator[ServicePlanner]:
    """The service's planning over a throw-away index of the set's (and extra) documents."""
    from knowledge.embedding import Embedder
    from knowledge.evaluation import doc_folders
    from knowledge.index import open_index
    from knowledge.ingest import ingest
    from service.app import build_prompt_layer

    local = settings.model_copy(deep=True)
    local.knowledge.collection = "eval"
    index = open_index("eval", Embedder(), store=settings.knowledge.store, path=scratch)
    try:
        for path in doc_folders(set_dir, options.extra_docs):
            report(f"indexing {path}: {ingest(index, path).summary()}")
        catalog = load_products(local.knowledge.catalog_dir)
        layer = build_prompt_layer(local, catalog, index)
        if options.examples is not None:
            report(f"few-shot examples: {seed_examples(layer.examples, options.examples)}")
        limits = PlanningLimits(
            local.knowledge.top_k,
            local.chat.max_examples,
            local.chat.example_similarity,
            options.guardrails,
        )
        yield ServicePlanner(layer, index, catalog, limits)
    finally:
        index.close()


def seed_examples(store: Any, dataset_dir: Path) -> int:
    """Rated answers of a dataset version's train split become few-shot examples, as ratings do
    in the service; returns how many."""
    path = dataset_dir / "sft" / "train.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --examples takes a dataset version folder")
    count = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        question = [m for m in row["prompt"] if m["role"] == "user"][-1]["content"]
        answer = "".join(m["content"] for m in row["completion"])
        store.add(str(row.get("message_id") or row["id"]), question, answer, row.get("product"))
        count += 1
    return count


async def _answer_variants(
    cases: Sequence[AnswerCase],
    options: AnswerEvalOptions,
    settings: Settings,
    adapter: Path | None,
    bare: Planner,
    prompted: Planner,
    progress: Progress,
) -> dict[str, list[Answer]]:
    from service.chat.hygiene import Hygiene

    engine = await _start_engine(settings, adapter)
    params = SamplingParams(max_tokens=options.max_new_tokens, temperature=0.0)
    system = load_system_prompt(settings.knowledge.catalog_dir)
    hygiene = Hygiene(system) if options.hygiene else None
    try:
        return {
            v.name: await answer_all(
                engine,
                v,
                prompted if v.prompted else bare,
                cases,
                params,
                ADAPTER_NAME if v.tuned else None,
                progress,
                hygiene,
            )
            for v in options.variants
        }
    finally:
        await engine.aclose()


async def _start_engine(settings: Settings, adapter: Path | None) -> Engine:
    from service.app import build_engine

    local = settings.model_copy(deep=True)
    local.engine.adapters_dir = None  # only the adapter under evaluation is loaded
    engine = build_engine(local)  # the engine the service is configured with (engine.kind)
    await engine.start()
    if adapter is not None:
        await engine.load_adapter(ADAPTER_NAME, str(adapter))
    return engine


def _report(
    case_set: CaseSet,
    options: AnswerEvalOptions,
    settings: Settings,
    adapter: Path | None,
    answers: dict[str, list[Answer]],
    canned: list[str],
) -> AnswerReport:
    with_sources = case_set.kind == "dataset" or case_set.needs_index
    scored = {
        name: [
            score_answer(case, answer, canned, with_sources and name.endswith("prompted"))
            for case, answer in zip(case_set.cases, results, strict=True)
        ]
        for name, results in answers.items()
    }
    variants = [summarize(name, results) for name, results in scored.items()]
    return AnswerReport(
        _setup(case_set, options, settings, adapter), variants, answer_rows(case_set.cases, scored)
    )


def _setup(
    case_set: CaseSet, options: AnswerEvalOptions, settings: Settings, adapter: Path | None
) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for case in case_set.cases:
        kinds[case.kind] = kinds.get(case.kind, 0) + 1
    return {
        "set": str(case_set.path),
        "set_kind": case_set.kind,
        "questions": len(case_set.cases),
        "left_out_as_seen_in_training": case_set.left_out,
        "kinds": kinds,
        "extra_docs": [str(p) for p in options.extra_docs],
        "examples": str(options.examples) if options.examples else None,
        "adapter": str(adapter) if adapter else None,
        "model": str(settings.model.directory),
        "engine": settings.engine.kind,
        "weights": settings.engine.weights,
        "max_new_tokens": options.max_new_tokens,
        "guardrails": options.guardrails,
        "top_k": settings.knowledge.top_k,
        "max_prompt_tokens": settings.chat.max_prompt_tokens,
        "source_chars": settings.chat.source_chars,
        "command": options.command,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {_cores()} cores",
    }


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))
