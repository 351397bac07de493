"""Choose the troubleshooting template for a question.

Among the product's templates, an exact error-code match wins; otherwise the question's best
cosine against each template's title, keyword phrases and example questions (MiniLM), plus a
little for literal keyword hits, must reach a threshold. The threshold is lower when the customer
describes a problem (an error code, or problem language: "won't", "keeps dropping", "shuts
itself off"). A question for a fact that describes no problem ("how long does the battery
last?", "does it support WPA3?") gets no template: the documentation answers it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from knowledge.catalog import TroubleshootingTemplate

ERROR_CODE = re.compile(r"\b([a-z]{1,2})[\s-]?(\d{1,3})\b", re.IGNORECASE)
PROBLEM_CUES = re.compile(
    r"\b(won'?t|wont|doesn'?t|doesnt|isn'?t|isnt|not|no longer|can'?t|cant|cannot|don'?t have|"
    r"dont have|keeps?|stopped|fail\w*|error|broken|problem|issue|dead|slow|drops?|blinking|"
    r"flashing|red|purple|amber|orange|offline|disconnect\w*|blurry|foggy|white|terrible|only|"
    r"never|again|stuck|hot|too many|constantly|all the time|million|forgot|forgotten|lost|"
    r"means?|wrong|weird|strange|refus\w*|shut\w*|(turns|switches) (itself )?off|reboot\w*|quit|"
    r"die[sd]?|dying|los(es|ing)|unplugged|blank|by itself|on its own)\b",
    re.IGNORECASE,
)
# A question for a fact ("how long does the battery last?", "does it support WPA3?") that
# describes no problem is answered from the documentation, not from a troubleshooting guide.
FACT_QUESTION = re.compile(
    r"^\W*(how (long|far|many|much|often|big|high|heavy|old|fast)|what('?s| is| are| does| do)?|"
    r"which|does|do|is|are|can|could|will|should|where|who|when)\b",
    re.IGNORECASE,
)
CODE_BONUS = 10.0
KEYWORD_BONUS = 0.1
THRESHOLD = 0.45  # with problem language or an error code
THRESHOLD_WITHOUT_CUE = 0.60  # a close match to a template is a problem statement by itself


class TextEmbedder(Protocol):
    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def error_codes(text: str) -> set[str]:
    """Things that look like error codes ("E5", "e-05" → "E5")."""
    return {f"{m.group(1).upper()}{int(m.group(2))}" for m in ERROR_CODE.finditer(text)}


def describes_problem(text: str, codes: set[str]) -> bool:
    return bool(codes) or bool(PROBLEM_CUES.search(text))


class TemplateSelector:
    """Picks at most one template per question, from the question's product when it is known."""

    def __init__(
        self, templates: Sequence[TroubleshootingTemplate], embedder: TextEmbedder
    ) -> None:
        self._templates = list(templates)
        self._embedder = embedder
        self._codes = {c for t in self._templates for c in t.match.error_codes}
        self._views: list[tuple[int, list[float]]] = []
        texts = [(i, v) for i, t in enumerate(self._templates) for v in _views(t)]
        vectors = embedder.embed([v for _, v in texts]) if texts else []
        self._views = [(i, vec) for (i, _), vec in zip(texts, vectors, strict=True)]

    def select(self, question: str, product: str | None) -> TroubleshootingTemplate | None:
        codes = error_codes(question) & self._codes  # "C3" is a camera, not an error code
        scores = self._scores(question, product, codes)
        if not scores:
            return None
        threshold = _threshold(question, codes)
        best = max(scores, key=lambda i: scores[i])
        return self._templates[best] if threshold and scores[best] >= threshold else None

    def _scores(self, question: str, product: str | None, codes: set[str]) -> dict[int, float]:
        query = self._embedder.embed([question])[0]
        lowered = question.lower()
        scores: dict[int, float] = {}
        for i, vector in self._views:
            template = self._templates[i]
            if product is not None and template.product != product:
                continue
            cosine = sum(a * b for a, b in zip(query, vector, strict=True))
            scores[i] = max(scores.get(i, -1.0), cosine)
        for i in scores:
            template = self._templates[i]
            hits = sum(_contains(lowered, k) for k in template.match.keywords)
            scores[i] += KEYWORD_BONUS * min(hits, 3)
            scores[i] += CODE_BONUS * len(codes & set(template.match.error_codes))
        return scores


def _threshold(question: str, codes: set[str]) -> float | None:
    """How close a template must be; None when no template should apply."""
    if describes_problem(question, codes):
        return THRESHOLD
    if FACT_QUESTION.match(question):
        return None
    return THRESHOLD_WITHOUT_CUE


def _views(template: TroubleshootingTemplate) -> list[str]:
    return [template.title, *template.match.keywords, *template.match.examples]


def _contains(text: str, phrase: str) -> bool:
    return re.search(rf"\b{re.escape(phrase.lower())}\b", text) is not None
