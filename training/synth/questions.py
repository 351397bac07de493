"""Questions a customer would ask that one chunk answers, and the answer condensed from it.

Read from the chunk's structure, never invented: an error-code table row gives "what does E5
mean" with the row's meaning and fix; a two-column specification row gives "what is the
<item>"; a section of numbered steps gives "how do I <heading>" with its steps; a plain section
gives its first sentences. Each answer holds `{cite}` where the chunk's source number goes, as
the service's prompt numbers it for that question. Unanswerable questions are another
product's error codes asked about a product that has no such code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from knowledge.index import SearchHit

CODE = re.compile(r"^\*{0,2}([A-Z]{1,2}\d{1,3})\*{0,2}$")
NUMBERED = re.compile(r"^\s*\d{1,2}[.)]\s+(.*)$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
SPEC_HEADER = re.compile(r"specification|value|rating|detail", re.IGNORECASE)
MARKUP = re.compile(r"\*\*|__|`")
MAX_STEPS = 6  # the rules' "at most 6 numbered steps at a time"
GERUNDS = {
    "setting": "set",
    "getting": "get",
    "adding": "add",
    "pairing": "pair",
    "updating": "update",
    "installing": "install",
    "changing": "change",
    "clearing": "clear",
    "fixing": "fix",
    "resetting": "reset",
    "restarting": "restart",
    "removing": "remove",
    "replacing": "replace",
    "mounting": "mount",
    "charging": "charge",
    "connecting": "connect",
    "moving": "move",
    "using": "use",
    "sharing": "share",
    "creating": "create",
    "turning": "turn",
    "checking": "check",
    "choosing": "choose",
    "formatting": "format",
    "wiring": "wire",
    "testing": "test",
    "recording": "record",
}
IMPERATIVES = set(GERUNDS.values()) | {"reboot", "enable", "disable", "find", "run", "pick"}


@dataclass(frozen=True)
class Draft:
    """A question, the answer with `{cite}` for the chunk's number, and the chunk it needs."""

    question: str
    answer: str
    chunk_id: str
    product: str | None
    kind: str  # error_code, specification, lookup, steps, section, unanswerable
    code: str | None = None


def drafts_for(hit: SearchHit, product_name: str) -> list[Draft]:
    """Every question this chunk answers on its own."""
    drafts = [*_table_drafts(hit, product_name)]
    steps = _numbered_steps(hit.text)
    if len(steps) >= 2:
        drafts.append(_steps_draft(hit, product_name, steps))
    elif not drafts and (section := _section_draft(hit, product_name)) is not None:
        drafts.append(section)
    return drafts


def unanswerable_drafts(drafts: Sequence[Draft], names: dict[str, str]) -> list[Draft]:
    """Error codes of one product asked about each other product that has no such code."""
    codes: dict[str, set[str]] = {}
    for d in drafts:
        if d.code and d.product:
            codes.setdefault(d.product, set()).add(d.code)
    asked: list[Draft] = []
    for draft in drafts:
        if draft.kind != "error_code" or draft.code is None:
            continue
        for product, name in names.items():
            if product != draft.product and draft.code not in codes.get(product, set()):
                asked.append(_unanswerable(draft.code, product, name))
    return list({d.question: d for d in asked}.values())


def _grounded(
    hit: SearchHit, kind: str, question: str, answer: str, code: str | None = None
) -> Draft:
    return Draft(question, answer, hit.chunk_id, hit.product, kind, code)


def _unanswerable(code: str, product: str, name: str) -> Draft:
    return Draft(
        question=f"My {_short(name)} shows error {code}. What does it mean?",
        answer=(
            f"The sources I have for the {_short(name)} don't list an error {code}, so I can't "
            "tell you what it means. Could you check the code shown on the device? I can also "
            "connect you with a member of our support team."
        ),
        chunk_id="",
        product=product,
        kind="unanswerable",
        code=code,
    )


def _table_drafts(hit: SearchHit, name: str) -> Iterator[Draft]:
    for header, rows in _tables(hit.text):
        for row in rows:
            if len(row) >= 2 and (match := CODE.match(row[0])):
                yield _code_draft(hit, name, match.group(1), row[1:])
            elif len(header) == 2 and len(row) == 2 and row[0] and row[1]:
                spec = SPEC_HEADER.search(" ".join(header))
                yield (_spec_draft if spec else _lookup_draft)(hit, name, row[0], row[1])


def _code_draft(hit: SearchHit, name: str, code: str, cells: list[str]) -> Draft:
    meaning = _clean(cells[0]).rstrip(".")
    fix = " ".join(_clean(c) for c in cells[1:]).strip()
    answer = f"{code} means: {_lower_first(meaning)} {{cite}}."
    if fix:
        answer += f" {fix}"
    question = f"My {_short(name)} shows {code}. What does that mean and what do I do?"
    return _grounded(hit, "error_code", question, answer, code)


def _spec_draft(hit: SearchHit, name: str, item: str, value: str) -> Draft:
    item, value = _clean(item), _clean(value)
    question = f"What is the {_lower_first(item)} of the {_short(name)}?"
    answer = f"The {_short(name)}'s {_lower_first(item)}: {value} {{cite}}."
    return _grounded(hit, "specification", question, answer)


def _lookup_draft(hit: SearchHit, name: str, key: str, value: str) -> Draft:
    """A two-column table that is no specification: an LED pattern and what it means, say."""
    key, value = _clean(key), _clean(value)
    question = f'What does "{key}" mean on my {_short(name)}?'
    answer = f"{key}: {_lower_first(value).rstrip('.')} {{cite}}."
    return _grounded(hit, "lookup", question, answer)


def _steps_draft(hit: SearchHit, name: str, steps: list[str]) -> Draft:
    shown = steps[:MAX_STEPS]
    lines = [f"{i}. {_first_sentence(step)}" for i, step in enumerate(shown, 1)]
    lines[0] = _cited(lines[0])
    more = " Let me know how it goes before we continue." if len(steps) > MAX_STEPS else ""
    return _grounded(hit, "steps", _how_question(_topic(hit), name), "\n".join(lines) + more)


def _section_draft(hit: SearchHit, name: str) -> Draft | None:
    sentences = [s for s in SENTENCE_END.split(_paragraphs(hit.text)) if len(s.split()) >= 4]
    if len(sentences) < 1 or not hit.heading_path:
        return None
    question = f"What should I know about {_lower_first(_topic(hit))} on my {_short(name)}?"
    return _grounded(hit, "section", question, _cited(" ".join(sentences[:2])))


def _cited(text: str) -> str:
    """The citation before the closing full stop: "… Wi-Fi Signal [1]."."""
    return text[:-1] + " {cite}." if text.endswith(".") else text + " {cite}"


def _how_question(topic: str, name: str) -> str:
    words = topic.split()
    first = words[0].lower() if words else ""
    where = f"on my {_short(name)}"
    if first in GERUNDS:
        return f"How do I {' '.join([GERUNDS[first], *words[1:]]).lower()} {where}?"
    if first in IMPERATIVES:
        return f"How do I {topic.lower()} {where}?"
    return f"How do I go about {_lower_first(topic)} on the {_short(name)}?"


def _topic(hit: SearchHit) -> str:
    """The chunk's own heading, without a "Step 3:" prefix or a trailing explanation."""
    heading = hit.heading_path[-1] if hit.heading_path else hit.title
    heading = re.sub(r"^(?:Step \d+:|\d{1,2}\.)\s*", "", heading)
    return heading.split(":")[0].strip().rstrip("?") or hit.title


def _tables(text: str) -> Iterable[tuple[list[str], list[list[str]]]]:
    lines = [line.strip() for line in text.splitlines()]
    table: list[list[str]] = []
    for line in [*lines, ""]:
        if line.startswith("|") and line.endswith("|"):
            table.append([cell.strip() for cell in line.strip("|").split("|")])
            continue
        if len(table) >= 3 and set("".join(table[1])) <= set("-: "):
            yield table[0], table[2:]
        table = []


def _numbered_steps(text: str) -> list[str]:
    return [_clean(m.group(1)) for line in text.splitlines() if (m := NUMBERED.match(line))]


def _paragraphs(text: str) -> str:
    keep = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "|", "-", "*", ">"))
    ]
    return _clean(" ".join(keep))


def _first_sentence(text: str) -> str:
    return SENTENCE_END.split(text, maxsplit=1)[0]


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", MARKUP.sub("", text)).strip()


def _lower_first(text: str) -> str:
    keep = len(text) > 1 and (text[1].isupper() or text[1].isdigit())  # E5, LED, 2.4 GHz
    return text if not text or keep else text[0].lower() + text[1:]


def _short(name: str) -> str:
    """ "Halcyon X1000 Wi-Fi 6 Router" → "X1000 Wi-Fi 6 Router": how customers name it."""
    words = name.split()
    return " ".join(words[1:]) if len(words) > 2 else name
