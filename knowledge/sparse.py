"""Lexical sparse vectors for Qdrant: BM25 term weights on the document side, IDF from Qdrant.

Exact terms decide support questions ("E5", "X1000", "WPS"), and dense embeddings blur them.
Qdrant's IDF modifier supplies the inverse document frequency at query time, so each document
only needs saturated term frequencies and each query only the presence of its terms.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

TOKEN = re.compile(r"[a-z0-9]+(?:[.\-][a-z0-9]+)*")
STOPWORDS = frozenset(
    """
    a an and are as at be but by can do does for from has have how i if in into is it its me my
    of on or our so that the their then there these this to was what when where which who why
    will with you your
    """.split()
)
K1 = 1.2
B = 0.75
AVERAGE_LENGTH = 160.0


def terms(text: str) -> list[str]:
    """Lower-cased word tokens without stopwords; "e-5" and "x1000" stay whole."""
    return [t for t in TOKEN.findall(text.lower()) if t not in STOPWORDS]


def term_index(term: str) -> int:
    return zlib.crc32(term.encode("utf-8")) & 0x7FFFFFFF


def encode_document(text: str) -> tuple[list[int], list[float]]:
    """Sparse BM25 term-frequency weights for a document."""
    counts = Counter(terms(text))
    length = sum(counts.values()) or 1
    norm = K1 * (1 - B + B * length / AVERAGE_LENGTH)
    weights: dict[int, float] = {}
    for term, tf in counts.items():
        index = term_index(term)
        weights[index] = weights.get(index, 0.0) + tf * (K1 + 1) / (tf + norm)
    return list(weights), list(weights.values())


def encode_query(text: str) -> tuple[list[int], list[float]]:
    """Each distinct query term once; Qdrant multiplies in its IDF."""
    indices = sorted({term_index(t) for t in terms(text)})
    return indices, [1.0] * len(indices)
