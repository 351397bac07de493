"""Retrieval evaluation on any folder in the eval-set format (docs.jsonl + questions.jsonl).

hit@k: a gold document is among the first k retrieved *documents* (chunks are collapsed to their
document, in the order of each document's best chunk). MRR is taken over the first 10 documents.
Latency is the wall time of one `KnowledgeIndex.search` call: query rewriting, embedding the query
on this process's device, Qdrant's hybrid query.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from knowledge.index import KnowledgeIndex, SearchHit
from knowledge.query import HistoryTurn

CUTOFFS = (1, 3, 5, 10)


@dataclass(frozen=True)
class EvalQuestion:
    """One question of an eval set, with its gold documents and conversation history."""

    id: str
    question: str
    doc_ids: list[str]
    product: str | None = None
    history: list[HistoryTurn] = field(default_factory=list)


@dataclass
class RetrievalReport:
    """The figures `tunedesk eval retrieval` prints."""

    questions: int
    hit_at: dict[int, float]
    mrr: float
    latency_p50_ms: float
    latency_p95_ms: float
    misses: list[str] = field(default_factory=list)
    setup: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> str:
        data = asdict(self)
        data["hit_at"] = {f"hit@{k}": v for k, v in self.hit_at.items()}
        return json.dumps(data, indent=2)

    def table(self) -> str:
        hits = "  ".join(f"hit@{k} {v:.3f}" for k, v in self.hit_at.items())
        return (
            f"{self.questions} questions  {hits}  MRR {self.mrr:.3f}\n"
            f"query latency p50 {self.latency_p50_ms:.1f} ms  p95 {self.latency_p95_ms:.1f} ms"
        )


def load_questions(folder: Path) -> list[EvalQuestion]:
    """questions.jsonl of an eval set; questions without gold documents are left out."""
    path = folder / "questions.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: an eval set holds docs.jsonl and questions.jsonl"
        )
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [
        EvalQuestion(
            id=str(row.get("id", n)),
            question=row["question"],
            doc_ids=[str(d) for d in row["doc_ids"]],
            product=row.get("product") or None,
            history=list(row.get("history") or []),
        )
        for n, row in enumerate(rows)
        if row.get("doc_ids")
    ]


def document_ranking(hits: Iterable[SearchHit]) -> list[str]:
    """Document ids in the order of each document's best chunk."""
    return list(dict.fromkeys(hit.doc_id for hit in hits))


def first_gold_rank(ranking: Sequence[str], gold: Iterable[str]) -> int | None:
    wanted = set(gold)
    return next((i + 1 for i, doc in enumerate(ranking) if doc in wanted), None)


def evaluate(
    index: KnowledgeIndex,
    questions: Sequence[EvalQuestion],
    *,
    use_history: bool = True,
    product_filter: bool = True,
    candidates: int = 50,
    progress: Callable[[Sequence[EvalQuestion]], Iterable[EvalQuestion]] = lambda qs: qs,
) -> RetrievalReport:
    """Ask every question once and score where its gold document lands."""
    if not questions:
        raise ValueError("the eval set has no question with gold documents")
    ranks: list[int | None] = []
    latencies: list[float] = []
    for q in progress(questions):
        started = time.perf_counter()
        hits = index.search(
            q.question,
            q.product if product_filter else None,
            candidates,
            history=q.history if use_history else None,
        )
        latencies.append((time.perf_counter() - started) * 1000)
        ranks.append(first_gold_rank(document_ranking(hits), q.doc_ids))
    return _report(questions, ranks, latencies)


def _report(
    questions: Sequence[EvalQuestion], ranks: list[int | None], latencies: list[float]
) -> RetrievalReport:
    n = len(ranks)
    return RetrievalReport(
        questions=n,
        hit_at={k: sum(r is not None and r <= k for r in ranks) / n for k in CUTOFFS},
        mrr=sum(1 / r for r in ranks if r is not None and r <= 10) / n,
        latency_p50_ms=statistics.median(latencies),
        latency_p95_ms=percentile(latencies, 95),
        misses=[q.id for q, r in zip(questions, ranks, strict=True) if r is None or r > 5],
    )


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def doc_folders(set_dir: Path, extra: Sequence[Path]) -> list[Path]:
    """What to index: the set's docs.jsonl, and each extra folder's docs.jsonl or whole folder."""
    own = set_dir / "docs.jsonl"
    paths = [own] if own.is_file() or not extra else []
    for folder in extra:
        paths.append(folder / "docs.jsonl" if (folder / "docs.jsonl").is_file() else folder)
    for path in paths:
        if not path.exists():
            hint = " (a folder without docs.jsonl needs --extra-docs DIR)" if path == own else ""
            raise FileNotFoundError(f"{path} not found{hint}")
    return paths
