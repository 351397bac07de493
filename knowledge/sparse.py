"""Lexical sparse vectors for Qdrant: BM25 term weights on the document side, IDF from Qdrant.

Exact terms decide support questions ("E5", "X1000", "WPS"), and dense embeddings blur them.
Qdrant's IDF modifier supplies the inverse document frequency at query time, so each document
only needs saturated term frequencies and each query only the presence of its terms. Words are
reduced to their Snowball stems ("charging" and "charger" meet "charge"); tokens with digits
("E5", "X1000", "192.168.8.1") are kept whole.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from functools import lru_cache

import snowballstemmer

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


_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(token: str) -> str:
    if any(c.isdigit() for c in token):
        return token
    return str(_STEMMER.stemWord(token))


def terms(text: str) -> list[str]:
    """Lower-cased, stemmed tokens without stopwords; "X1000" and "192.168.8.1" stay whole.

    A hyphenated token also counts joined: "Wi-Fi" matches "wifi", "E-5" matches "E5".
    """
    found: list[str] = []
    for token in TOKEN.findall(text.lower()):
        if "-" in token:
            found += [stem(p) for p in token.split("-") if len(p) > 1 and p not in STOPWORDS]
            token = token.replace("-", "")
        if token not in STOPWORDS:
            found.append(stem(token))
    return found


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
    """Each query term weighted by how often the query says it; Qdrant multiplies in its IDF."""
    weights: dict[int, float] = {}
    for term in terms(text):
        index = term_index(term)
        weights[index] = weights.get(index, 0.0) + 1.0
    indices = sorted(weights)
    return indices, [weights[i] for i in indices]
