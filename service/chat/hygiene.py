"""Answer hygiene: the model's debris never reaches a customer.

The demo adapter does not end its turn. After a good first paragraph it signs off
("Thanks, [NAME]"), lists "Sources:", starts the few-shot examples' header, invents the next
customer turn (or says the customer's question again), loops over the same sentences, drifts
into tokens of another script, or recites its rules. The markers below come from
the prompt's own text (service/prompting/builder.py) and from every answer the adapter wrote
(knowledge/sample/adapters/sample-sft-1/evaluation.json; `python -m bench.answer_hygiene`).

`AnswerGuard` watches an answer while it streams. It holds back only what could still turn into
a marker or a repeat, so a marker's first characters are never sent, and it says where to cut.
An answer that copies the rules (eight words in a row that are not also in the sources or the
brand's own replies) is a leak: the whole answer is replaced. A phrase said over and over inside
one sentence ("tap Advanced, tap Advanced, ...") is cut with its sentence, or, where the
sentence's start streamed before the loop showed, right after what was sent: nothing shown is
taken back.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from knowledge.catalog import SystemPrompt
from service.engines.stops import partial_stop
from service.prompting.builder import EXAMPLES_HEADER, NO_SOURCES, RULES, TROUBLESHOOTING

Reason = Literal["cut_debris", "cut_repeat", "prompt_leak"]
LEAK_WORDS = 8  # this many words in a row from the rules or instructions make a leak
REPEAT_WORDS = 6  # a sentence this long said a second time ends the answer
LOOP_UNIT = 6  # a run of up to this many words said again and again in a row is a loop ...
LOOP_TIMES = 3  # ... when it comes this many times in a row
LOOP_WORDS = 8  # ... covering at least this many words ("tap Advanced, tap Advanced, ...")
LINE_HOLD = 32  # a new line's first characters wait: markers that start a line fit in them
QUESTION_HOLD = 100  # a paragraph's opening words wait until they cannot be an invented question
ENGINE_STOP_CHARS = 24  # longest stop string handed to an engine
MIN_WORDS = 3  # a cut that leaves fewer words than this is replaced instead
RULES_HEADER = "rules_header"  # the rule of a marker that opens the system prompt
UNFINISHED_CHARS = 8  # this much of the prompt's fixed text at the very end is cut too
FOREIGN_AFTER_WORDS = 6  # another script counts as junk only after this many words
ECHO_SHARE = 0.75  # a new line that repeats this share of the question (in a row) echoes it
ECHO_WORDS = 4  # ... and at least this many words; it may start up to two words in

# Markers that count only at the start of a line after the first: what follows the answer.
LINE_MARKERS: tuple[tuple[str, str], ...] = (
    ("sources_list", r"\**sources?\**\s*:|\[\d{1,2}(?:\]|$)|\d{1,2}\] "),
    (
        "next_turn",
        r"\**(?:customer|user|agent|assistant|human|question|answer|q|a)\**[ \t]*:",
    ),
    ("sign_off", r"(?:thanks|thank you|best regards|kind regards|regards|cheers|sincerely)\b"),
)
# A hand-off the model announces: "I'll connect you", "Let me transfer you", after "Yes, ".
PROMISE_LEADS = ("yes", "yeah", "ok", "okay", "sure")
PROMISE_LEAD = rf"(?:{'|'.join(PROMISE_LEADS)}),?"
PROMISE = (
    r"(?:I(?:'|\u2019| )?ll|I will|I am going to|I'm going to|let me)\s+(?:now\s+|just\s+)?"
    r"(?:connect|transfer|put|pass|hand|escalate|forward)\s+(?:you|this|your)\b"
)
PROMISE_HOLD = 64  # characters of a sentence that may wait to see if it is such a promise
# Markers that count anywhere: the scrubber's placeholders, junk glued to a full stop, and a
# question the model asks itself and answers on the next line (an invented FAQ).
ANYWHERE_MARKERS: tuple[tuple[str, str], ...] = (
    ("placeholder", r"\[(?:NAME|EMAIL|PHONE|ADDRESS|INST)\]"),
    # a word glued to a full stop ("offline.saraba"), once it is whole; never inside a web
    # address ("www.motorvehicles.gov", "studentaid.gov/help"): see `_glued_junk`
    ("glued_junk", r"(?<=[A-Za-z0-9)][.!?])[A-Za-z]{4,}(?=\s)"),
    ("invented_question", r"(?<=\n\n)[^\n?]{3,200}\?\n(?=\S)"),
    # "I'll connect you with our support team now.": the model cannot hand a conversation
    # over, so the customer would wait for no one. A hand-off is the guardrails' decision;
    # the sentence is cut (with a lead-in such as "Yes, ") and becomes the brand's offer.
    ("handoff_promise", rf"(?i)(?:^|(?<=[.!?]\s)|(?<=\n))(?:{PROMISE_LEAD}\s+)?{PROMISE}"),
)
LINE_START = r"(?im)(?<=\n)[ \t>*-]*"  # after a line break, bullets and bold allowed
CONTRACTIONS = (("n't", " not"), ("'s", " is"), ("'re", " are"), ("'ll", " will"), ("'m", " am"))
WORD = re.compile(r"[a-z0-9]+")
TOKEN = re.compile(r"\w+")
CITATION = re.compile(r"\[\d{1,2}\]")
QUESTION_OPENING = re.compile(rf"\n\n[^\n.!:]{{0,{QUESTION_HOLD}}}(?:\?\n?)?")
GLUED_TAIL = re.compile(r"(?<=[A-Za-z0-9)])[.!?][A-Za-z]{1,12}$")
OPEN_CITATION = re.compile(r"\[\d{0,2}$")
LINE = re.compile(r"(?<=\n)[^\n]+")
SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


@dataclass(frozen=True)
class Verdict:
    """Why and where an answer ends early: `at` is the cut in the raw text (a leak: 0)."""

    reason: Reason
    rule: str
    at: int


@dataclass(frozen=True)
class Cleaned:
    """What the customer sees, and why it differs from what the model wrote."""

    text: str
    verdict: Verdict | None = None
    replaced: bool = False  # the brand's low-confidence reply instead of the model's text


def words(text: str) -> list[str]:
    """Lower-case words, contractions spelled out, citation markers and punctuation dropped."""
    text = CITATION.sub(" ", text.lower().replace("’", "'"))
    for short, long in CONTRACTIONS:
        text = text.replace(short, long)
    return WORD.findall(text)


def ngrams(tokens: Sequence[str], n: int = LEAK_WORDS) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def _labels(template: str) -> list[str]:
    """The fixed words of a prompt template, e.g. "Ask the customer, if not known:"."""
    pieces = [part.strip().lstrip('" ') for part in re.split(r"\{[a-z_]+\}", template)]
    lines = [line.strip() for piece in pieces for line in piece.split("\n")]
    return [line for line in lines if len(line.split()) >= 2 and len(line) >= 12]


class Hygiene:
    """The debris markers and leak phrases of one system prompt and the prompt layout."""

    def __init__(self, system: SystemPrompt) -> None:
        self.fallback = system.low_confidence_reply
        # the fallback's closing question ("Would you like me to connect you with ...?") is
        # what a cut hand-off promise becomes
        closing = re.split(r"(?<=[.!?])\s+", self.fallback.strip())[-1]
        self.offer = closing if closing.endswith("?") else ""
        canned = [
            system.out_of_scope_reply,
            system.handoff_reply or "",
            *system.handoff_replies.values(),
            self.fallback,
        ]
        # The prompt's fixed text: never part of an answer, wherever it starts.
        self.literals = (
            *_labels(TROUBLESHOOTING),
            *_labels(RULES),
            " ".join(EXAMPLES_HEADER.split()[:4]),
            NO_SOURCES.split(":")[0],
        )
        openings = [re.escape(" ".join(c.split()[:5]).rstrip(".,!?")) for c in canned if c]
        line_rules = [*LINE_MARKERS, ("canned_reply", "|".join(openings))]
        self._line = [(rule, re.compile(LINE_START + f"(?:{p})")) for rule, p in line_rules]
        self._anywhere = [(rule, re.compile(p)) for rule, p in ANYWHERE_MARKERS]
        self._literal = [(_literal_rule(t), re.compile(re.escape(t), re.I)) for t in self.literals]
        # A template's instruction lines are cut at their labels; their escalate_when conditions
        # read like the docs (four false leaks in the bench), so only the rules can leak.
        header = RULES.split("\n")[0].format(brand=system.brand, voice=system.voice)
        rules = set().union(*(ngrams(words(t)) for t in [header, EXAMPLES_HEADER, *system.rules]))
        self._leaks: set[tuple[str, ...]] = rules - ngrams(words(" ".join(canned)))

    def stop_strings(self) -> tuple[str, ...]:
        """Plain strings an engine can stop on itself, freeing its slot early. Short ones
        only: an engine holds back the length of its longest stop string before sending."""
        starts = ["\nSources:", "\nsources:", "\nCustomer:", "\nUser:", "\nAgent:", "\nThanks,"]
        short = [t for t in self.literals if len(t) <= ENGINE_STOP_CHARS]
        return (*starts, *short, "[NAME]")

    def rule_for_stop(self, stop: str) -> str:
        """The rule a stop string an engine stopped on belongs to."""
        if stop in self.literals:
            return _literal_rule(stop)
        found = self.first_marker("\n" + stop.lstrip("\n") + " ")
        return found.rule if found else "stop_string"

    def guard(self, sources: Iterable[str] = (), question: str = "") -> AnswerGuard:
        """A guard for one answer to this question, asked with these sources (copying them is
        fine; so is writing in their scripts or the question's)."""
        sources = list(sources)
        leaks = self._leaks - ngrams(words(" ".join(sources)))
        return AnswerGuard(self, leaks, words(question), scripts(" ".join([question, *sources])))

    def clean(self, text: str, sources: Iterable[str] = (), question: str = "") -> Cleaned:
        """A whole answer, judged as it would have been while streaming."""
        guard = self.guard(sources, question)
        guard.feed(text)
        guard.finish()
        return guard.result()

    def first_marker(self, text: str, final: bool = False) -> Verdict | None:
        """The earliest debris marker in the text (`final`: nothing more will follow it)."""
        hits = [
            Verdict("prompt_leak" if rule == RULES_HEADER else "cut_debris", rule, match.start())
            for rule, pattern in [*self._literal, *self._line, *self._anywhere]
            if (match := _first(pattern, text + "\n" if final else text, rule))
        ]
        return min(hits, key=lambda v: v.at, default=None)

    def unfinished(self, text: str) -> Verdict | None:
        """The prompt's fixed text, begun and cut off by the length cap ("Ask the customer, if")."""
        size = partial_stop(text, self.literals, fold_case=True)
        if size < UNFINISHED_CHARS:
            return None
        tail = text[len(text) - size :].lower()
        literal = next(t for t in self.literals if t.lower().startswith(tail))
        return Verdict("cut_debris", _literal_rule(literal), len(text) - size)

    def held_back(self, text: str) -> int:
        """Where the text may still be turning into a marker: send only what comes before."""
        line = text.rfind("\n")
        hold = line if line >= 0 and len(text) - line <= LINE_HOLD else len(text)
        if (start := text.rfind("\n\n")) >= 0 and QUESTION_OPENING.fullmatch(text[start:]):
            hold = min(hold, start)
        if glued := GLUED_TAIL.search(text):
            hold = min(hold, glued.start() + 1)

        partial = partial_stop(text, (*self.literals, "[NAME]"), fold_case=True)
        return min(hold, len(text) - partial, _promise_opening(text))


class AnswerGuard:
    """Judges one answer as it streams: feed it deltas, send what it returns."""

    def __init__(
        self,
        hygiene: Hygiene,
        leaks: set[tuple[str, ...]],
        question: list[str] | None = None,
        allowed_scripts: set[str] | None = None,
    ) -> None:
        self._hygiene = hygiene
        self._leaks = leaks
        self._question = question or []
        self._scripts = (allowed_scripts or set()) | {"LATIN"}
        self.text = ""
        self.sent = 0  # characters of `text` sent
        self.shown = ""  # everything sent, the replacing reply included
        self.verdict: Verdict | None = None

    def feed(self, delta: str) -> str:
        """The text that is safe to send now; once `verdict` is set, stop generating."""
        if self.verdict is not None:
            return ""
        self.text += delta
        self.verdict = self._judge(final=False)
        end = self._cut() if self.verdict else self._safe_end()
        return self._send(end)

    def finish(self) -> str:
        """The generation ended: judge what was held back, and send what is clean. A reply
        that replaces the model's text is sent here when none of the model's was."""
        if self.verdict is None:
            self.verdict = self._judge(final=True) or self._hygiene.unfinished(self.text)
        piece = self._send(self._cut() if self.verdict else len(self.text))
        cleaned = self.result()
        if cleaned.replaced and not self.shown.strip():
            self.shown += cleaned.text
            piece += cleaned.text
        elif cleaned.text.startswith(self.shown.strip()):  # what follows the cut (an offer)
            rest = cleaned.text[len(self.shown.strip()) :]
            rest = rest.lstrip() if self.shown[-1:].isspace() else rest
            self.shown += rest
            piece += rest
        return piece

    def stopped_on(self, stop: str) -> None:
        """The engine stopped on one of our stop strings (it is not in the text)."""
        if self.verdict is None:
            rule = self._hygiene.rule_for_stop(stop)
            self.verdict = Verdict("cut_debris", rule, len(self.text))

    def result(self) -> Cleaned:
        """The answer to store and return."""
        verdict = self.verdict
        if verdict is None:
            return Cleaned(self.text.strip())
        kept = self.text[: verdict.at].strip()
        if verdict.rule == "handoff_promise" and self._hygiene.offer:
            # a lead-in the customer has not seen ("Yes, ") goes with the promise
            lead = kept if len(words(kept)) >= MIN_WORDS or self.shown.strip() else ""
            return Cleaned(f"{lead} {self._hygiene.offer}".strip(), verdict)
        if verdict.rule == "repeated_phrase" and self.shown.strip():
            return Cleaned(kept.rstrip(" ,;:"), verdict)  # what was shown, less the loop
        if verdict.reason == "prompt_leak" or len(words(kept)) < MIN_WORDS:
            return Cleaned(self._hygiene.fallback, verdict, replaced=True)
        return Cleaned(kept, verdict)

    @property
    def retracted(self) -> bool:
        """What was sent is not the answer: the client must show the final answer instead."""
        return self.verdict is not None and self.shown.strip() != self.result().text

    def _send(self, end: int) -> str:
        piece = self.text[self.sent : end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        self.shown += piece
        return piece

    def _cut(self) -> int:
        return len(self.text[: self.verdict.at].rstrip()) if self.verdict else len(self.text)

    def _safe_end(self) -> int:
        held = self._hygiene.held_back(self.text)
        return min(held, self._repeat_candidate(), self._echo_candidate(), self._loop_candidate())

    def _judge(self, final: bool) -> Verdict | None:
        found = [self._hygiene.first_marker(self.text, final), self._repeat(final)]
        found += [self._echo(), self._foreign(), self._loop()]
        cut = min((v for v in found if v), key=lambda v: v.at, default=None)
        if self._leaked(self.text[: cut.at] if cut else self.text):
            return Verdict("prompt_leak", "rules_copy", 0)
        return cut

    def _leaked(self, text: str) -> bool:
        return bool(self._leaks) and not self._leaks.isdisjoint(ngrams(words(text)))

    def _repeat(self, final: bool) -> Verdict | None:
        seen: set[tuple[str, ...]] = set()
        for start, end in _sentences(self.text, final):
            said = tuple(words(self.text[start:end]))
            if len(said) >= REPEAT_WORDS and said in seen:
                paragraph = start == 0 or self.text[:start].rstrip(" \t").endswith("\n\n")
                return Verdict("cut_repeat", f"repeated_{_unit(paragraph)}", start)
            seen.add(said)
        return None

    def _loop(self) -> Verdict | None:
        """A phrase said over and over inside a sentence ("tap Advanced, tap Advanced, tap
        Advanced, ..."), which the sentence rule cannot see: the sentence is cut where it starts,
        or, when some of it has streamed (an OpenAI client cannot be told to take text back),
        right after what was sent."""
        tokens = list(TOKEN.finditer(self.text.lower()))
        at = loop_start([t.group() for t in tokens], LOOP_TIMES, LOOP_WORDS)
        if at is None:
            return None
        cut = self._sentence_start(tokens[at].start())
        return Verdict("cut_repeat", "repeated_phrase", cut if cut >= self.sent else self.sent)

    def _loop_candidate(self) -> int:
        """The start of the unfinished sentence while a phrase in it has come twice in a row
        (it may be the start of a loop); the text's length otherwise."""
        finished = _sentences(self.text, final=False)
        start = finished[-1][1] if finished else 0
        said = TOKEN.findall(self.text[start:].lower())
        return start if loop_start(said, 2, 4) is not None else len(self.text)

    def _sentence_start(self, at: int) -> int:
        starts = [s for s, _ in _sentences(self.text, final=True) if s <= at]
        return starts[-1] if starts else 0

    def _echo(self) -> Verdict | None:
        """A line after the first that says the customer's question again: a next turn."""
        need = max(ECHO_WORDS, round(ECHO_SHARE * len(self._question)))
        if len(self._question) < ECHO_WORDS:
            return None
        for line in LINE.finditer(self.text):
            said = words(line.group())
            if any(_run(said[k:], self._question) >= need for k in range(3)):
                return Verdict("cut_debris", "question_echo", line.start())
        return None

    def _echo_candidate(self) -> int:
        """The start of the last line while it could still become the question again."""
        start = self.text.rfind("\n") + 1
        said = words(OPEN_CITATION.sub("", self.text[start:]))
        if start == 0 or len(self._question) < ECHO_WORDS or not said:
            return len(self.text)
        echoing = any(_within(said[k:], self._question) for k in range(min(3, len(said))))
        return start if echoing else len(self.text)

    def _foreign(self) -> Verdict | None:
        """A letter in a script neither the question nor the sources use, after a start in
        theirs: a junk token. An answer that starts in another script is left alone."""
        for at, char in enumerate(self.text):
            if char.isalpha() and not scripts(char) <= self._scripts:
                started = len(words(self.text[:at])) >= FOREIGN_AFTER_WORDS
                return Verdict("cut_debris", "foreign_script", at) if started else None
        return None

    def _repeat_candidate(self) -> int:
        """The start of an unfinished sentence that so far repeats an earlier one."""
        spans = _sentences(self.text, final=True)
        if len(spans) < 2:
            return len(self.text)
        start, end = spans[-1]
        partial = words(OPEN_CITATION.sub("", self.text[start:end]))
        earlier = [words(self.text[s:e]) for s, e in spans[:-1]]
        repeating = len(partial) >= 1 and any(_begins(e, partial) for e in earlier)
        return start if repeating else len(self.text)


def _first(pattern: re.Pattern[str], text: str, rule: str) -> re.Match[str] | None:
    """The pattern's first match; for glued junk, the first outside a web address."""
    if rule != "glued_junk":
        return pattern.search(text)
    for match in pattern.finditer(text):
        start = max(text.rfind(" ", 0, match.start()), text.rfind("\n", 0, match.start())) + 1
        end = min(
            (i for i in (text.find(" ", match.end()), text.find("\n", match.end())) if i >= 0),
            default=len(text),
        )
        token = text[start:end].lower()
        if not any(mark in token for mark in ("www.", "/", "@", "http")):
            return match
    return None


def loop_start(tokens: Sequence[str], times: int, cover: int) -> int | None:
    """The index of the first token of a run of 1..LOOP_UNIT tokens that comes `times` or more
    times in a row, covering at least `cover` tokens; None when there is none."""
    for i in range(len(tokens)):
        for n in range(1, LOOP_UNIT + 1):
            unit = tokens[i : i + n]
            count = 1
            while tokens[i + count * n : i + (count + 1) * n] == unit:
                count += 1
            if len(unit) == n and count >= times and count * n >= cover:
                return i
    return None


def _promise_opening(text: str) -> int:
    """Where the last, unfinished sentence starts while it could still become a hand-off
    promise ("Ye", "Yes, I", "I'll conn", "Let me tr"); the text's length when it cannot."""
    start = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
    start = max(start + 2 if start >= 0 else 0, text.rfind("\n") + 1)
    tail = text[start:].lower()
    if not tail.strip() or len(tail) > PROMISE_HOLD:
        return len(text)
    lead = re.match(rf"{PROMISE_LEAD}\s+", tail)
    rest = tail[lead.end() :] if lead else tail
    if not lead and any(word.startswith(tail.rstrip(",!. ")) for word in PROMISE_LEADS):
        return start  # a lead-in being written
    if rest == "" or re.fullmatch(r"(?:i|l|le|let)(?:\b[^.!?\n]*)?", rest):
        return start
    return len(text)


def scripts(text: str) -> set[str]:
    """The writing systems of the text's letters: LATIN, CYRILLIC, CJK, ..."""
    return {unicodedata.name(c, "UNKNOWN").split()[0] for c in text if c.isalpha()}


def _run(said: list[str], question: list[str]) -> int:
    """How many of the first words said appear in a row in the question."""
    best = 0
    for i in range(len(question)):
        n = 0
        while n < len(said) and i + n < len(question) and said[n] == question[i + n]:
            n += 1
        best = max(best, n)
    return best


def _within(said: list[str], question: list[str]) -> bool:
    """Could the words said so far (the last perhaps unfinished) be a run of the question?"""
    n = len(said)
    return any(
        question[i : i + n - 1] == said[:-1] and question[i + n - 1].startswith(said[-1])
        for i in range(len(question) - n + 1)
    )


def _literal_rule(literal: str) -> str:
    """The system prompt's opening is a leak; the rest of the prompt's fixed text debris."""
    return RULES_HEADER if RULES.startswith(literal) else "prompt_text"


def _begins(sentence: list[str], partial: list[str]) -> bool:
    """Could the partial sentence (its last word perhaps unfinished) become this one?"""
    n = len(partial)
    if len(sentence) < max(n, REPEAT_WORDS) or sentence[: n - 1] != partial[:-1]:
        return False
    return sentence[n - 1].startswith(partial[-1])


def _unit(paragraph: bool) -> str:
    return "paragraph" if paragraph else "sentence"


def _sentences(text: str, final: bool) -> list[tuple[int, int]]:
    """(start, end) of each sentence; the last one only if it is finished (or `final`)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    if final and text[start:].strip():
        spans.append((start, len(text)))
    kept = [(s, e) for s, e in spans if text[s:e].strip()]
    return [(s + len(text[s:e]) - len(text[s:e].lstrip()), e) for s, e in kept]
