"""Examples from a public grounded dialogue set, mixed into a dataset with its attribution.

A set in the eval-set format (../shared/data/README.md: docs.jsonl + questions.jsonl whose
`answer` is the grounding span, e.g. doc2dial, CC-BY-3.0) teaches the model what the product's own
data cannot: other kinds of pages, multi-turn follow-ups, answers that quote the passage. Its
documents are split in two by a hash of their id; only turns about the train half become
examples, and the dataset's manifest lists both halves, so `tunedesk eval answers --exclude-seen`
scores a tuned model only on turns about documents it never saw.

Each turn is planned exactly as the chat service plans a customer's message (the same index, scope
guard, template and prompt budget as `tunedesk eval answers`). It is kept only when the service
would let the model answer and the gold document is among the numbered sources; the answer is the
grounding span, tidied, citing the source that holds it. A span too short to answer anything,
or one the PII scrubber would change (an agency's phone number is not personal, but a placeholder
in a target teaches the model to write placeholders), is left out. What is kept becomes a rated
transcript (channel `public:<set>`, an agent's `good` whose comment carries the attribution),
scrubbed, de-duplicated, split and versioned like any other.
"""

from __future__ import annotations

import hashlib
import random
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.config import Settings
from training.evaluation.cases import AnswerCase, load_cases
from training.evaluation.run import AnswerEvalOptions, service_planner
from training.evaluation.variants import Plan, Planner
from training.pii.scrubber import Scrubber
from training.synth.build import gather
from training.transcripts import (
    RatingRecord,
    SourceRef,
    Transcript,
    TranscriptMessage,
    rated_answer,
)

WORD = re.compile(r"[a-z0-9]+")
SPAN_SHARE = 0.6  # of the span's distinct words the cited source must hold


class PublicSetError(ValueError):
    """A set that cannot be mixed in; the message says what to fix."""


@dataclass(frozen=True)
class PublicSetOptions:
    """Which set, under what licence, and how much of it."""

    path: Path
    attribution: str  # licence and source, e.g. "doc2dial (Feng et al., EMNLP 2020), CC-BY-3.0"
    max_examples: int = 120
    held_out_share: float = 0.5  # of the set's documents, never trained on
    max_answer_words: int = 90  # longer spans are left out: the answer cap is 192 tokens
    min_answer_words: int = 5
    seed: int = 0

    @property
    def name(self) -> str:
        return self.path.resolve().name


@dataclass
class PublicSetResult:
    """The transcripts made, what happened to every turn tried, and the split of documents."""

    transcripts: list[Transcript] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    train_docs: list[str] = field(default_factory=list)
    held_out_docs: list[str] = field(default_factory=list)

    def provenance(self, options: PublicSetOptions) -> dict[str, Any]:
        """What the dataset's manifest records about the set (read back by drop_seen)."""
        return {
            "set": str(options.path),
            "name": options.name,
            "attribution": options.attribution,
            "examples": len(self.transcripts),
            "turns": dict(sorted(self.counts.items())),
            "held_out_share": options.held_out_share,
            "seed": options.seed,
            "train_docs": self.train_docs,
            "held_out_docs": self.held_out_docs,
        }


def is_held_out(doc_id: str, share: float, seed: int) -> bool:
    """Whether a document is in the held-out part: a stable hash, so every run agrees."""
    digest = hashlib.sha256(f"{seed}\n{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def public_set_transcripts(
    options: PublicSetOptions, settings: Settings, report: Callable[[str], None] = print
) -> PublicSetResult:
    """Rated transcripts from the set's turns about its train documents."""
    if not options.attribution.strip():
        raise PublicSetError("--mix-attribution is required: name the set's source and licence")
    if not (options.path / "questions.jsonl").is_file():
        raise PublicSetError(
            f"{options.path} holds no questions.jsonl: --mix-set takes an eval-set folder "
            "(docs.jsonl + questions.jsonl, see docs/training.md)"
        )
    cases = [c for c in load_cases(options.path).cases if c.kind == "in_scope" and c.gold_sources]
    result = PublicSetResult()
    docs = sorted({d for c in cases for d in c.gold_sources})
    for doc in docs:
        held = is_held_out(doc, options.held_out_share, options.seed)
        (result.held_out_docs if held else result.train_docs).append(doc)
    train = set(result.train_docs)
    chosen = [c for c in cases if set(c.gold_sources) <= train]
    random.Random(options.seed).shuffle(chosen)
    report(
        f"{options.name}: {len(train)} of {len(docs)} documents to train on, "
        f"{len(chosen)} of {len(cases)} turns about them"
    )
    plan_options = AnswerEvalOptions(variants=[])
    with (
        tempfile.TemporaryDirectory(prefix="tunedesk-public-set-") as scratch,
        service_planner(options.path, plan_options, settings, Path(scratch), report) as planner,
    ):
        _ground_all(chosen, planner, options, result)
    return result


def _ground_all(
    cases: Iterable[AnswerCase],
    planner: Planner,
    options: PublicSetOptions,
    result: PublicSetResult,
) -> None:
    gather(cases, lambda case: ground(case, planner, options), result, options.max_examples)


def ground(
    case: AnswerCase, planner: Planner, options: PublicSetOptions
) -> tuple[str, Transcript | None]:
    """The turn as the service would prompt it, with the span as its answer, or why not."""
    span = tidy_span(case.reference)
    if len(span.split()) > options.max_answer_words:
        return "span_too_long", None
    if len(span.split()) < options.min_answer_words or "[" in span:
        return "span_not_an_answer", None  # "For more information." or a link's [label]
    if Scrubber().find(span):
        return "span_would_be_scrubbed", None  # an agency's phone number would train [PHONE]
    plan = planner.plan(case)
    if plan.canned is not None:
        return f"answered_by_service:{plan.outcome}", None
    number = citing_source(span, case.gold_sources, plan)
    if number is None:
        return "source_not_retrieved", None
    return "kept", transcript_of(case, plan, cite(span, number), number, options)


def tidy_span(text: str) -> str:
    """A grounding span as an answer: one line, no space before punctuation or inside a
    hyphenated word, a capital first letter, and ending a sentence ("... coverage , " →
    "... coverage.")."""
    text = " ".join(text.split())
    text = re.sub(r"\s+([,.;:!?)])", r"\1", text).strip(" ,;:-")
    text = re.sub(r"(\w) - (?=\w)", r"\1-", text)  # doc2dial's "service - connected"
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def cite(span: str, number: int) -> str:
    """The citation before the span's final full stop, as the service's answers place it."""
    if span.endswith("."):
        return f"{span[:-1]} [{number}]."
    return f"{span} [{number}]"


def citing_source(span: str, gold: list[str], plan: Plan) -> int | None:
    """The number of the first source from a gold document holding most of the span's words."""
    wanted = set(WORD.findall(span.lower()))
    for number, (doc, text) in enumerate(zip(plan.sources, plan.source_texts, strict=False), 1):
        have = set(WORD.findall(text.lower()))
        if doc in gold and wanted and len(wanted & have) >= SPAN_SHARE * len(wanted):
            return number
    return None


def transcript_of(
    case: AnswerCase, plan: Plan, answer: str, number: int, options: PublicSetOptions
) -> Transcript:
    """One turn of the set as a rated transcript: its history, the exact prompt and sources."""
    key = hashlib.sha256(f"{options.name}\n{case.id}".encode()).hexdigest()[:16]
    conversation = f"public-{options.name}-{key}"
    history = [
        TranscriptMessage(id=f"{conversation}-h{n}", role=m["role"], content=m["content"])
        for n, m in enumerate(case.history)
        if m["role"] in ("user", "assistant")
    ]
    sources = [
        SourceRef(number=n, chunk_id=chunk, title=doc, product=case.product)
        for n, (chunk, doc) in enumerate(zip(plan.chunk_ids, plan.sources, strict=False), 1)
    ]
    rating = RatingRecord(
        id=f"{conversation}-r",
        rater="agent",
        label="good",
        comment=f"grounding span of {options.name} turn {case.id}; {options.attribution}",
    )
    return Transcript(
        conversation_id=conversation,
        product=case.product,
        channel=f"public:{options.name}",
        messages=[
            *history,
            TranscriptMessage(id=f"{conversation}-q", role="user", content=case.question),
            rated_answer(
                f"{conversation}-a", answer, case.product, plan.messages, sources, [number], rating
            ),
        ],
    )


def trained_documents(manifest: dict[str, Any], set_dir: Path) -> set[str]:
    """The documents of `set_dir` a dataset version trained on (empty when it mixed none)."""
    found: set[str] = set()
    for entry in (manifest.get("source") or {}).get("public_sets") or []:
        same = Path(entry.get("set", "")).resolve() == set_dir.resolve()
        if same or entry.get("name") == set_dir.resolve().name:  # the dataset may have moved
            found |= set(entry.get("train_docs") or [])
    return found
