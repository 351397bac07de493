"""Is the question about our products, and did retrieval find anything that answers it?

Relevance is the question's best cosine (MiniLM) against the retrieved chunks. Below the
threshold, a question that names none of our products and no known error code is out of
scope (a polite refusal, no invented answer); one that does, or that matched a troubleshooting
template, is a low-confidence case (the
bot says it could not find the answer and offers a human, instead of guessing).
Measured on the sample questions: 16 of 17 off-topic questions are caught, and 1 of 68
product questions is refused by mistake (bench/guardrails.py).

A reply to the conversation ("Yes, I am.", "no she was married", "How is it calculated?") says
little on its own, so its relevance alone is low even when the conversation is squarely about
the documents. Such a follow-up (see `follows_up`) is also measured with the conversation before
it, the same text retrieval searched with; a new question that stands on its own ("what's the
capital of Peru?") is judged by itself, wherever the conversation was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from knowledge.index import SearchHit
from knowledge.query import HistoryTurn, search_text
from service.prompting.selection import TextEmbedder

RELEVANCE_THRESHOLD = 0.35
CHUNK_PREFIX_CHARS = 300

Scope = Literal["in_scope", "out_of_scope", "low_confidence"]

# How a reply to the conversation opens: an answer to the bot's question, or a continuation.
REPLY_OPENERS = frozenset(
    """yes yeah yep yup no nope nah ok okay sure correct right exactly both neither not none
    thanks thank same still also and but so then""".split()
)
# Words that point back at something said before ("how is *it* calculated?", "what about that?").
BACK_REFERENCES = frozenset(
    """it its it's that that's thats this these those they them their there one ones
    he she his her him""".split()
)
SHORT_REPLY_WORDS = 3


def follows_up(question: str) -> bool:
    """Does this message lean on the conversation before it: a short reply, one that opens like
    an answer ("yes", "no", "both"), or one that points back ("it", "that", "those")?"""
    words = re.findall(r"[a-z']+", question.lower())
    if len(words) <= SHORT_REPLY_WORDS or words[0] in REPLY_OPENERS:
        return True
    return any(word in BACK_REFERENCES for word in words)


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

    def judge(
        self,
        question: str,
        sources: Sequence[SearchHit],
        product: str | None,
        matched_template: bool,
        history: Sequence[HistoryTurn] = (),
    ) -> Scope:
        """The scope of a message, a follow-up measured with the conversation before it."""
        relevance = self.relevance(question, sources)
        if relevance < self._threshold and history and follows_up(question):
            relevance = max(relevance, self.relevance(search_text(question, history), sources))
        return self.classify(relevance, product, matched_template)

    def classify(self, relevance: float, product: str | None, matched_template: bool) -> Scope:
        if relevance >= self._threshold:
            return "in_scope"
        if product is None and not matched_template:
            return "out_of_scope"
        return "low_confidence"
