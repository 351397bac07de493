"""Is the question about our products, and did retrieval find anything that answers it?

Relevance is the question's best cosine (MiniLM) against the retrieved chunks. Below the
threshold, a question that names none of our products and no known error code is out of
scope (a polite refusal, no invented answer); one that does, or that matched a troubleshooting
template, is a low-confidence case (the
bot says it could not find the answer and offers a human, instead of guessing).
Measured on the sample questions: 16 of 17 off-topic questions are caught, and 1 of 68
product questions is refused by mistake (bench/guardrails.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from knowledge.index import SearchHit
from service.prompting.selection import TextEmbedder

RELEVANCE_THRESHOLD = 0.35
CHUNK_PREFIX_CHARS = 300

Scope = Literal["in_scope", "out_of_scope", "low_confidence"]


class ScopeGuard:
    def __init__(self, embedder: TextEmbedder, threshold: float = RELEVANCE_THRESHOLD) -> None:
        self._embedder = embedder
        self._threshold = threshold

    def relevance(self, question: str, hits: Sequence[SearchHit]) -> float:
        if not hits:
            return 0.0
        vectors = self._embedder.embed([question, *(h.text[:CHUNK_PREFIX_CHARS] for h in hits)])
        query, chunks = vectors[0], vectors[1:]
        return max(sum(a * b for a, b in zip(query, c, strict=True)) for c in chunks)

    def classify(self, relevance: float, product: str | None, matched_template: bool) -> Scope:
        if relevance >= self._threshold:
            return "in_scope"
        if product is None and not matched_template:
            return "out_of_scope"
        return "low_confidence"
