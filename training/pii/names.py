"""People's names in customer text, found without a language model.

No NER model runs offline here (spaCy's models are not on PyPI), so names are found by the
places people put them and confirmed against the US census first-name lists that ship in the
`names` package (about 5,000 given names):

- after "my name is" / "name:" any one or two words are a name, in any case;
- one or two capitalised words that end a message after a sign-off ("Thanks, Priya"), or
  one that follows a greeting at the start of a message ("Thanks, Priya. ...", "Hi Tomasz,");
- after an honorific (Mr, Mrs, Ms, Dr, ...) one or two capitalised words;
- after "I'm" / "this is" (or before "here"), two capitalised words;
- after "I'm", "this is", a greeting, a sign-off, a dash or a relation ("my wife ..."), a
  capitalised word that is a known given name, with a capitalised surname after it;
- anywhere, a known given name followed by a capitalised word ("Dana Whitfield").

Limits, honestly: given names missing from the census lists (many non-Western names) are found
only in those contexts that accept any word; a lone given name without context ("ask Priya")
is kept; given names that are common words (Will, May, Dawn, ...) are only taken in contexts.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from training.pii.findings import Finding

WORD = r"(?:[A-Z]['’])?[A-Z][a-z]+(?:[A-Z][a-z]+)?(?:-[A-Z][a-z]+)?"  # O'Neill, McKay, Ann-Marie
ANY_WORD = r"(?:[A-Za-z]['’])?[A-Za-z][a-z]+(?:[A-Z][a-z]+)?(?:-[A-Za-z][a-z]+)?"

# Given names in the census lists that are also everyday English words or words of this domain.
COMMON_WORDS = frozenset(
    """
    a an and as at be by can do else for go he in is it long many may me my no of on or so
    see soon the to up we will yes you your us art bill chase chip dawn don guy hope joy king
    lane mark max miss page pat penny ray reed rich rob rose sandy sky sue summer sun sunny
    wade winter autumn amber angle april august june january denver numbers season manual lan
    wan mac royal star sterling ivy jewel faith grace honor joy love major merry milan
    paris trinity again all everyone folks guys team support halcyon very not really
    upset happy angry sorry new back home here having trying still just also
    """.split()
)

NAMED_AS = re.compile(
    rf"\b(?i:my\s+name\s+is|my\s+name's|name\s*:|full\s+name\s*:)\s+({ANY_WORD}(?:\s+{ANY_WORD})?)"
)
HONORIFIC = re.compile(rf"\b(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof)\.?\s+({WORD}(?:\s+{WORD})?)")
CONTEXT = re.compile(
    r"(?:\b(?i:i'm|i’m|i\s+am|im|this\s+is|it's|it’s|hi|hello|hey|dear|thanks|thank\s+you"
    r"|regards|cheers|best|sincerely|my\s+(?:wife|husband|partner|son|daughter|friend|mom"
    r"|mum|dad|brother|sister|neighbou?r|landlord|technician|installer|electrician"
    r"|colleague))[,!.:]?|^|\n|[-–—~])\s*"
    rf"({WORD}(?:\s+{WORD})?)"
)
GREETING = re.compile(
    rf"^\s*(?i:hi|hello|hey|dear|thanks|thank\s+you|thanks\s+so\s+much)[,!]?\s+({WORD})(?=\s*[,.!:])"
)
INTRODUCED = re.compile(
    rf"\b(?i:i'm|i’m|i\s+am|this\s+is|it's|it’s)\s+({WORD}\s+{WORD})\b|\b({WORD}\s+{WORD})\s+here\b"
)
SIGN_OFF = re.compile(
    r"\b(?i:thanks|thank\s+you|regards|cheers|sincerely|best|br|ta)[,!.]?\s*[-–—~]?\s*"
    rf"({WORD}(?:\s+{WORD})?)[.!]?\s*$"
)
FULL_NAME = re.compile(rf"(?<!@)\b({WORD})\s+({WORD})\b")
INITIALS_SIGNATURE = re.compile(r"(?<=\s)\^[A-Z]{2,3}\b")  # social-care sign-offs like "^SH"


@cache
def given_names() -> frozenset[str]:
    """Lowercase given names from the census lists shipped in the `names` package."""
    folder = resources.files("names")
    found: set[str] = set()
    for name in ("dist.male.first", "dist.female.first"):
        for line in folder.joinpath(name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                found.add(line.split()[0].lower())
    return frozenset(found - COMMON_WORDS)


def is_given_name(word: str) -> bool:
    return word.lower() in given_names()


def find_names(text: str) -> list[Finding]:
    """Spans of text that name a person."""
    spans = [Finding("NAME", *m.span(1)) for m in NAMED_AS.finditer(text)]
    spans += [Finding("NAME", *m.span(1)) for m in HONORIFIC.finditer(text)]
    spans += [Finding("NAME", *m.span(1)) for m in SIGN_OFF.finditer(text)]
    spans += [Finding("NAME", *m.span(1)) for m in GREETING.finditer(text) if _plain(m.group(1))]
    spans += [_confirmed(text, m.start(1), m.group(1)) for m in CONTEXT.finditer(text)]
    for match in INTRODUCED.finditer(text):
        group = match.lastindex or 1
        if _plain(match.group(group)):
            spans.append(Finding("NAME", *match.span(group)))
    spans += [Finding("NAME", *m.span()) for m in FULL_NAME.finditer(text) if _full_name(m)]
    spans += [Finding("NAME", *m.span()) for m in INITIALS_SIGNATURE.finditer(text)]
    return [s for s in spans if s.end > s.start]


def _confirmed(text: str, start: int, words: str) -> Finding:
    """The known given name at the front of `words`, with a capitalised word after it."""
    first, _, rest = words.partition(" ")
    if not is_given_name(first):
        return Finding("NAME", start, start)
    surname = rest.strip()
    if surname and surname.lower() not in COMMON_WORDS:
        return Finding("NAME", start, start + len(words))
    return Finding("NAME", start, start + len(first))


def _plain(words: str) -> bool:
    return all(w.lower() not in COMMON_WORDS for w in words.split())


def _full_name(match: re.Match[str]) -> bool:
    first, last = match.group(1), match.group(2)
    return is_given_name(first) and last.lower() not in COMMON_WORDS
