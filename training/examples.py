"""Rated answers → SFT examples and preference pairs, each with the prompt the model saw.

- An answer rated good becomes an SFT example; an agent's corrected answer becomes one too.
- A correction also makes a preference pair: the correction is chosen over the original.
- Two answers to the same prompt rated differently make a pair: the good one is chosen.

Who decides: the latest agent rating, when there is one; otherwise the customers' ratings,
which must agree. A score of 3 with no label decides nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from service.engines.base import ChatMessage
from training.prompts import AnswerPrompt, PromptRebuilder, PromptUnavailable
from training.transcripts import RatingRecord, Transcript, TranscriptMessage

Verdict = Literal["good", "bad"]


@dataclass
class SFTExample:
    """A prompt and the answer the model should give to it."""

    conversation_id: str
    message_id: str
    prompt: list[ChatMessage]
    completion: str
    origin: Literal["good", "corrected", "teacher"]
    rating_ids: list[str]
    product: str | None
    provenance: str


@dataclass
class PreferencePair:
    """A prompt, a better answer and a worse one."""

    conversation_ids: list[str]
    message_ids: list[str]
    prompt: list[ChatMessage]
    chosen: str
    rejected: str
    origin: Literal["corrected", "rated"]
    rating_ids: list[str]
    product: str | None
    provenance: str


@dataclass(frozen=True)
class RatingPolicy:
    """Which ratings count."""

    raters: tuple[str, ...] = ("customer", "agent")
    corrections_from: tuple[str, ...] = ("agent",)


@dataclass
class Derived:
    """Everything derived from a batch of transcripts, and why answers were left out."""

    sft: list[SFTExample] = field(default_factory=list)
    pairs: list[PreferencePair] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    provenance: Counter[str] = field(default_factory=Counter)
    answers: int = 0
    # prompts with no answer to learn from, only when asked for: SFT examples of origin
    # `teacher` whose completion is still empty (training/teacher.py fills it)
    unanswered: list[SFTExample] = field(default_factory=list)


@dataclass(frozen=True)
class _Rated:
    transcript: Transcript
    message: TranscriptMessage
    prompt: AnswerPrompt
    verdict: Verdict | None
    rating_ids: list[str]


def verdict_of(ratings: Sequence[RatingRecord], policy: RatingPolicy) -> Verdict | None:
    """good / bad by the latest agent rating, else by agreeing customer ratings."""
    counted = [r for r in ratings if r.rater in policy.raters and r.verdict is not None]
    agents = [r for r in counted if r.rater == "agent"]
    if agents:
        return agents[-1].verdict  # type: ignore[return-value]
    verdicts = {r.verdict for r in counted}
    return verdicts.pop() if len(verdicts) == 1 else None  # type: ignore[return-value]


def correction_of(ratings: Sequence[RatingRecord], policy: RatingPolicy) -> RatingRecord | None:
    """The latest rating that carries a corrected answer from a trusted rater."""
    corrections = [
        r
        for r in ratings
        if r.rater in policy.corrections_from and r.corrected_answer and r.corrected_answer.strip()
    ]
    return corrections[-1] if corrections else None


def derive(
    transcripts: Iterable[Transcript],
    rebuilder: PromptRebuilder,
    policy: RatingPolicy,
    unanswered: bool = False,
) -> Derived:
    """SFT examples and preference pairs from every rated answer; with `unanswered`, also the
    prompts that have no answer to learn from (unrated answers included), for a teacher."""
    derived = Derived()
    rated: list[_Rated] = []
    for transcript in transcripts:
        for index, message in enumerate(transcript.messages):
            if message.role != "assistant":
                continue
            if not message.ratings:
                if unanswered:  # not a rated answer: counted nowhere but as a teacher's prompt
                    item = _rate(transcript, index, rebuilder, policy, Derived())
                    derived.unanswered += [_unanswered(item)] if item else []
                continue
            derived.answers += 1
            item = _rate(transcript, index, rebuilder, policy, derived)
            if item is None:
                continue
            rated.append(item)
            made = len(derived.sft)
            _from_one_answer(item, policy, derived)
            if unanswered and len(derived.sft) == made:
                derived.unanswered.append(_unanswered(item))
    derived.pairs += _rated_pairs(rated)
    return derived


def _unanswered(item: _Rated) -> SFTExample:
    return _sft(item, "", "teacher", item.rating_ids)


def _rate(
    transcript: Transcript,
    index: int,
    rebuilder: PromptRebuilder,
    policy: RatingPolicy,
    derived: Derived,
) -> _Rated | None:
    message = transcript.messages[index]
    if message.finish_reason == "handoff":  # the brand's hand-off reply; no model wrote it
        derived.skipped["canned-answer"] += 1
        return None
    try:
        prompt = rebuilder.prompt_for(transcript, index)
    except PromptUnavailable as exc:
        derived.skipped[f"prompt-unavailable:{exc}"] += 1
        return None
    derived.provenance[prompt.provenance] += 1
    counted = [r for r in message.ratings if r.rater in policy.raters]
    return _Rated(transcript, message, prompt, verdict_of(counted, policy), [r.id for r in counted])


def _from_one_answer(item: _Rated, policy: RatingPolicy, derived: Derived) -> None:
    message = item.message
    correction = correction_of(message.ratings, policy)
    usable = bool(message.content.strip()) and message.error is None
    if item.verdict == "good" and usable and correction is None:
        derived.sft.append(_sft(item, message.content, "good", item.rating_ids))
    elif correction is None:
        reason = "unusable-answer" if item.verdict == "good" else f"verdict:{item.verdict}"
        derived.skipped[reason] += 1
    if correction is None or correction.corrected_answer is None:
        return
    corrected = correction.corrected_answer.strip()
    derived.sft.append(_sft(item, corrected, "corrected", [correction.id]))
    if usable and corrected != message.content.strip():
        derived.pairs.append(_pair([item], corrected, message.content, "corrected"))


def _sft(item: _Rated, completion: str, origin: str, rating_ids: list[str]) -> SFTExample:
    return SFTExample(
        conversation_id=item.transcript.conversation_id,
        message_id=item.message.id,
        prompt=item.prompt.messages,
        completion=completion.strip(),
        origin=origin,  # type: ignore[arg-type]
        rating_ids=rating_ids,
        product=item.message.product or item.transcript.product,
        provenance=item.prompt.provenance,
    )


def _pair(items: list[_Rated], chosen: str, rejected: str, origin: str) -> PreferencePair:
    first = items[0]
    return PreferencePair(
        conversation_ids=sorted({i.transcript.conversation_id for i in items}),
        message_ids=[i.message.id for i in items],
        prompt=first.prompt.messages,
        chosen=chosen.strip(),
        rejected=rejected.strip(),
        origin=origin,  # type: ignore[arg-type]
        rating_ids=[r for i in items for r in i.rating_ids],
        product=first.message.product or first.transcript.product,
        provenance=first.prompt.provenance,
    )


def _rated_pairs(rated: Sequence[_Rated]) -> list[PreferencePair]:
    """Good versus bad answers to exactly the same prompt."""
    by_prompt: dict[str, list[_Rated]] = defaultdict(list)
    for item in rated:
        if item.message.content.strip() and item.message.error is None:
            by_prompt[prompt_key(item.prompt.messages)].append(item)
    pairs = []
    for group in by_prompt.values():
        good = [i for i in group if i.verdict == "good"]
        bad = [i for i in group if i.verdict == "bad"]
        for g in good:
            for b in bad:
                if g.message.content.strip() != b.message.content.strip():
                    pairs.append(_pair([g, b], g.message.content, b.message.content, "rated"))
    return pairs


def prompt_key(messages: Sequence[ChatMessage]) -> str:
    """A hash that is equal for equal prompts."""
    canonical = json.dumps([[m["role"], m["content"].strip()] for m in messages])
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
