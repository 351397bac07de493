"""The part of a long source that a prompt shows: the pieces that answer the question, in order.

A chunk is up to 1,200 characters (a table up to 4,000) and a prompt shows each source in at
most `max_chars` (700). Cutting at the head drops whatever comes later: on the T2's error-code
table, the rows from E24 on, so "what does E24 mean" was answered with E20's meaning; in the
S10 manual's "Apps" section, the "Set as default" option 1,100 characters in.

Instead the source is cut into pieces (lines: paragraphs, list items, table rows; a line longer
than half the room is cut into sentences), and the pieces are ranked by BM25 against the
question, with the source's own pieces as the collection, so a word in every piece (the
product's name) counts for little and a code in one row (E24) for much. The lead piece (a
section's opening sentence, a table's header) comes first when it is short, then the best
pieces while they fit; a kept table row brings its table's header along, and when the question
names a code that a row names, rows naming its siblings (E20, E21 ...) are left out. What is
shown keeps the source's order, with "…" where something was left out. A source that fits is
shown whole.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from knowledge.identifiers import identifiers, names_other
from knowledge.sparse import terms

SEPARATOR_ROW = re.compile(r"^\|?\s*:?-{3,}")
# a sentence ends at . ! ? after a word, before a capital ("settings.From  Camera" too)
SENTENCE_END = re.compile(r"(?<=[a-z0-9)\]][.!?])\s*(?=[A-Z])")
GAP = "…"
K1 = 1.2
B = 0.75


@dataclass(frozen=True)
class _Piece:
    index: int
    text: str
    before: str  # what separated it from the previous piece: "\n\n", "\n" or " "
    header: tuple[int, ...] = ()  # a table row's header and separator pieces, shown with it


def excerpt(text: str, question: str, max_chars: int) -> str:
    """At most about `max_chars` characters of `text`, the pieces that match `question` first."""
    if len(text) <= max_chars:
        return text
    pieces = _pieces(text, max_chars // 2)
    scores = _bm25([terms(p.text) for p in pieces], set(terms(question)))
    asked = identifiers(question)
    others = [names_other(p.text, asked) for p in pieces]
    if asked and not all(others) and any(others):
        # the row of the code asked about is here: rows of its siblings only mislead
        scores = [-1.0 if other else score for score, other in zip(scores, others, strict=True)]
    ranked = sorted(pieces, key=lambda p: (-scores[p.index], p.index))
    lead = pieces[0]
    if len(lead.text) <= max_chars // 3 and scores[0] >= 0:
        ranked = [lead, *(p for p in ranked if p is not lead)]
    chosen: set[int] = set()
    used = 0
    for piece in ranked:
        if scores[piece.index] < 0:
            continue
        wanted = [i for i in (*piece.header, piece.index) if i not in chosen]
        cost = sum(len(pieces[i].text) + 1 for i in wanted)
        if used + cost > max_chars:
            continue
        chosen.update(wanted)
        used += cost
    if not chosen:  # even the best piece is longer than the room: cut it at a word
        return ranked[0].text[:max_chars].rsplit(" ", 1)[0] + " " + GAP
    return _join(pieces, sorted(chosen))


def _pieces(text: str, longest: int) -> list[_Piece]:
    """Lines, long lines as sentences; a table's rows know its header (the row above |---|)."""
    found: list[_Piece] = []
    header: tuple[int, ...] = ()
    blank = False
    for raw in text.splitlines():
        if not raw.strip():
            blank = True
            continue
        before = "\n\n" if blank else "\n"
        blank = False
        i = len(found)
        if not raw.lstrip().startswith("|"):
            header = ()
            for n, sentence in enumerate(_sentences(raw) if len(raw) > longest else [raw]):
                found.append(_Piece(len(found), sentence, before if n == 0 else " "))
        elif SEPARATOR_ROW.match(raw.strip().lstrip("|").strip()):
            above_is_row = i > 0 and found[i - 1].text.lstrip().startswith("|")
            header = (i - 1, i) if above_is_row else (i,)
            found.append(_Piece(i, raw, before, header[:-1]))
        else:
            found.append(_Piece(i, raw, before, header))
    return found


def _sentences(line: str) -> list[str]:
    return [s for s in (s.strip() for s in SENTENCE_END.split(line)) if s]


def _bm25(documents: list[list[str]], query: set[str]) -> list[float]:
    """BM25 of each piece against the question's terms, the pieces being the collection."""
    count = len(documents)
    average = sum(len(d) for d in documents) / count or 1.0
    frequency = Counter(t for d in documents for t in set(d))
    scores = []
    for document in documents:
        tf = Counter(document)
        score = 0.0
        for term in query & tf.keys():
            idf = math.log(1 + (count - frequency[term] + 0.5) / (frequency[term] + 0.5))
            norm = tf[term] + K1 * (1 - B + B * len(document) / average)
            score += idf * tf[term] * (K1 + 1) / norm
        scores.append(score)
    return scores


def _join(pieces: list[_Piece], kept: list[int]) -> str:
    """The kept pieces in order, "…" where pieces were left out (not between a table's rows)."""
    text = ""
    previous = -1
    for i in kept:
        piece = pieces[i]
        skipped_rows = bool(piece.header) and previous >= piece.header[-1]
        if i == previous + 1 or skipped_rows:
            text += piece.before + piece.text if text else piece.text
        else:
            text += _gap(piece.before, text) + piece.text
        previous = i
    if previous != len(pieces) - 1:
        text += _gap(pieces[previous + 1].before, text).rstrip()
    return text


def _gap(before: str, text: str) -> str:
    if before == " ":
        return f" {GAP} " if text else f"{GAP} "
    return f"{before}{GAP}{before}" if text else f"{GAP}{before}"
