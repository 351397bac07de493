"""How one answer is scored against its reference: token F1, ROUGE-L, refusal, citations.

Token F1 is SQuAD's: lower-cased words without punctuation or English articles, overlap counted
with multiplicity. ROUGE-L is Google's `rouge-score` (longest common subsequence, Porter stemmer).
Citation markers like `[2]` are taken out of both texts first: they are scored on their own.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

CITATION_MARKER = re.compile(r"\[\d{1,2}\]")
ARTICLES = re.compile(r"\b(a|an|the)\b")
PUNCTUATION = str.maketrans(dict.fromkeys(string.punctuation + "‘’“”–—…", " "))

# Ways a reply declines a question instead of answering it (the brand's canned replies are
# matched exactly as well). Kept narrow: "I'm sorry to hear that" is sympathy, not a refusal.
REFUSAL = re.compile(
    r"\b(i can only (help|assist|answer)|i(?:'m| am) only able to help"
    r"|i can(?:no|')t help with (that|this|questions)|i(?:'m| am) (not able|unable) to help"
    r"|(that|this) is(?: not|n't) something i can help|outside (of )?what i can help"
    r"|only (help|assist) with halcyon|i couldn'?t find this in our documentation"
    r"|i (don'?t|do not) have (any )?information (about|on) (that|this))\b",
    re.IGNORECASE,
)
OFFERS_HUMAN = re.compile(
    r"\b(human|(support|service) (agent|team)|member of (our|the) [\w\s]{0,30}team"
    r"|connect(ing)? you (with|to))\b",
    re.IGNORECASE,
)


def normalize(text: str) -> str:
    """SQuAD normalisation, citation markers removed first."""
    text = CITATION_MARKER.sub(" ", text).lower().translate(PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of word precision and recall; 1.0 when both are empty."""
    predicted, wanted = normalize(prediction).split(), normalize(reference).split()
    if not predicted or not wanted:
        return float(predicted == wanted)
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "rouge-score is not installed: pip install 'tunedesk[train]'", name="rouge_score"
        ) from exc
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure of the answer against the reference."""
    strip = CITATION_MARKER.sub
    return float(_rouge().score(strip(" ", reference), strip(" ", prediction))["rougeL"].fmeasure)


def is_refusal(answer: str, canned: Iterable[str] = ()) -> bool:
    """Does the answer decline (a brand's canned refusal, or refusal wording)?"""
    text = " ".join(answer.split())
    if any(text == " ".join(c.split()) for c in canned if c):
        return True
    return bool(REFUSAL.search(text))


def echoes_prompt(answer: str, prompt_texts: Iterable[str], chars: int = 80) -> bool:
    """Does the answer open by copying the prompt back (what a base model given rules does)?
    Such an answer neither refuses nor cites, whatever words or [n] it repeats."""
    opening = " ".join(answer.split())[:chars]
    if len(opening) < 30:
        return False
    return any(opening in " ".join(text.split()) for text in prompt_texts)


def offers_human(answer: str) -> bool:
    """Does the answer offer or announce a hand-over to a person?"""
    return bool(OFFERS_HUMAN.search(answer))


def citations_correct(cited: Sequence[str], gold: Iterable[str]) -> bool:
    """At least one source cited, and every cited source is a gold one."""
    wanted = set(gold)
    return bool(cited) and all(source in wanted for source in cited)
