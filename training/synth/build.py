"""`tunedesk dataset synth`: a first dataset from a team's documents, before anyone has rated.

Each question drafted from a chunk (training/synth/questions.py) is planned exactly as the chat
service plans a customer's message: hybrid search over an index of the same documents, the
troubleshooting template, the prompt budget, hand-off rules and the scope guard. A draft is kept
only when the service would let the model answer it and, for an answerable question, the chunk it
was drafted from is among the numbered sources, or another numbered source states the same
answer (most of its words, and the error code where there is one: an error-code row often loses
to the longer "Fixing E5" section, which is just as right); the answer then cites that number. An
unanswerable draft is kept only when no source mentions its error code. What is kept becomes a
rated transcript (channel `synth`, an agent's `good` with the comment `synthesized`), so it is
scrubbed, de-duplicated, split and versioned like any rated transcript, and people's ratings and
corrections can be added on top.
"""

from __future__ import annotations

import hashlib
import random
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from knowledge.catalog import load_products
from knowledge.index import SearchHit
from service.config import Settings
from training.chunks import DocsChunks
from training.evaluation.cases import AnswerCase
from training.evaluation.run import AnswerEvalOptions, service_planner
from training.evaluation.variants import Plan, Planner
from training.synth.questions import Draft, drafts_for, unanswerable_drafts
from training.transcripts import (
    RatingRecord,
    SourceRef,
    Transcript,
    TranscriptMessage,
    rated_answer,
)

T = TypeVar("T")


class Gathered(Protocol):
    """What `gather` fills: the transcripts kept and a count of every outcome."""

    transcripts: list[Transcript]
    counts: Counter[str]


SYNTH_CHANNEL = "synth"
SYNTH_COMMENT = "synthesized from the documents by tunedesk dataset synth"


@dataclass(frozen=True)
class SynthOptions:
    """How many drafts to keep of each kind per product, and the share of unanswerable ones."""

    max_per_kind: int | None = None
    unanswerable_share: float = 0.15
    seed: int = 0


@dataclass
class SynthResult:
    """The transcripts made, and what happened to every draft."""

    transcripts: list[Transcript] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


def synthesize(
    docs: Path, settings: Settings, options: SynthOptions, report: Callable[[str], None] = print
) -> SynthResult:
    """Grounded question → answer transcripts from the documents under `docs`."""
    chunks = DocsChunks(docs)
    answerable, unanswerable = choose_drafts(chunks.all(), settings, options)
    report(f"{len(answerable)} questions drafted from {len(chunks)} chunks under {docs}")
    result = SynthResult()
    plan_options = AnswerEvalOptions(variants=[], extra_docs=[docs])
    with (
        tempfile.TemporaryDirectory(prefix="tunedesk-synth-") as scratch,
        service_planner(docs, plan_options, settings, Path(scratch), report) as planner,
    ):
        _ground_all(answerable, planner, chunks, result, None)
        share = options.unanswerable_share
        wanted = round(len(result.transcripts) * share / (1 - share))
        _ground_all(unanswerable, planner, chunks, result, len(result.transcripts) + wanted)
    return result


def _ground_all(
    drafts: Sequence[Draft],
    planner: Planner,
    chunks: DocsChunks,
    result: SynthResult,
    until: int | None,
) -> None:
    gather(drafts, lambda draft: ground(draft, planner, chunks), result, until)


def gather(
    items: Iterable[T],
    grounded: Callable[[T], tuple[str, Transcript | None]],
    result: Gathered,
    until: int | None,
) -> None:
    """Ground items one by one into `result` (counting every outcome) until it holds `until`
    transcripts; shared by synthesized drafts and public-set turns."""
    for item in items:
        if until is not None and len(result.transcripts) >= until:
            return
        outcome, transcript = grounded(item)
        result.counts[outcome] += 1
        if transcript is not None:
            result.transcripts.append(transcript)


def choose_drafts(
    hits: Sequence[SearchHit], settings: Settings, options: SynthOptions
) -> tuple[list[Draft], list[Draft]]:
    """(answerable, unanswerable) drafts, shuffled; at most `max_per_kind` a kind per product."""
    names = {p.id: p.name for p in load_products(settings.knowledge.catalog_dir).products}
    drafts = [d for hit in hits for d in drafts_for(hit, names.get(hit.product or "", "product"))]
    rng = random.Random(options.seed)
    rng.shuffle(drafts)
    kept: list[Draft] = []
    per_kind: Counter[tuple[str | None, str]] = Counter()
    for draft in drafts:
        key = (draft.product, draft.kind)
        if options.max_per_kind is None or per_kind[key] < options.max_per_kind:
            per_kind[key] += 1
            kept.append(draft)
    unanswerable = unanswerable_drafts(drafts, names)
    rng.shuffle(unanswerable)
    return kept, unanswerable


def ground(draft: Draft, planner: Planner, chunks: DocsChunks) -> tuple[str, Transcript | None]:
    """The draft as the service would prompt it, or why it was left out."""
    plan = planner.plan(
        AnswerCase(id="", question=draft.question, reference="", product=draft.product)
    )
    if plan.canned is not None:
        return f"answered_by_service:{plan.outcome}", None
    if draft.kind == "unanswerable":
        pattern = re.compile(rf"\b{re.escape(draft.code or '')}\b")
        texts = chunks.by_ids(plan.chunk_ids).values()
        if any(pattern.search(hit.text) for hit in texts):
            return "code_found_in_sources", None
        return f"kept:{draft.kind}", transcript_of(draft, plan, draft.answer, [], chunks)
    if draft.chunk_id in plan.chunk_ids:
        number = plan.chunk_ids.index(draft.chunk_id) + 1
        outcome = f"kept:{draft.kind}"
    else:
        found = supporting_source(draft, [chunks.by_ids([i]).get(i) for i in plan.chunk_ids])
        if found is None:
            return "source_not_retrieved", None
        number, outcome = found, f"kept:{draft.kind}:another_source"
    answer = draft.answer.format(cite=f"[{number}]")
    return outcome, transcript_of(draft, plan, answer, [number], chunks)


WORD = re.compile(r"[a-z0-9]+")
SUPPORT_SHARE = 0.8  # of the answer's words that the other source must contain


def supporting_source(draft: Draft, sources: Sequence[SearchHit | None]) -> int | None:
    """The number of the first source, other than the drafted-from chunk, that states the
    draft's answer: its error code (if any) and SUPPORT_SHARE of its distinct words."""
    wanted = set(WORD.findall(draft.answer.format(cite="").lower()))
    if not wanted:
        return None
    code = re.compile(rf"\b{re.escape(draft.code)}\b") if draft.code else None
    for number, hit in enumerate(sources, 1):
        if hit is None or (code is not None and not code.search(hit.text)):
            continue
        have = set(WORD.findall(hit.text.lower()))
        if len(wanted & have) >= SUPPORT_SHARE * len(wanted):
            return number
    return None


def transcript_of(
    draft: Draft, plan: Plan, answer: str, citations: list[int], chunks: DocsChunks
) -> Transcript:
    """One synthesized exchange as a rated transcript, with the exact prompt and its sources."""
    key = hashlib.sha256(f"{draft.question}\n{draft.chunk_id}".encode()).hexdigest()[:16]
    hits = chunks.by_ids(plan.chunk_ids)
    sources = [
        SourceRef(
            number=n,
            chunk_id=i,
            title=hits[i].title,
            heading=hits[i].heading,
            source=hits[i].source,
            product=hits[i].product,
        )
        for n, i in enumerate(plan.chunk_ids, 1)
        if i in hits
    ]
    rating = RatingRecord(id=f"synth-{key}-r", rater="agent", label="good", comment=SYNTH_COMMENT)
    return Transcript(
        conversation_id=f"synth-{key}",
        product=draft.product,
        channel=SYNTH_CHANNEL,
        messages=[
            TranscriptMessage(id=f"synth-{key}-q", role="user", content=draft.question),
            rated_answer(
                f"synth-{key}-a", answer, draft.product, plan.messages, sources, citations, rating
            ),
        ],
    )
