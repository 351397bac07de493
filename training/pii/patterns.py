"""Detectors for personal data with a fixed shape: e-mail, card, phone, address, handle.

Phone numbers are found by Google's libphonenumber (the `phonenumbers` package), postal
addresses by `pyap2` (US, Canadian and UK addresses) plus a street-line pattern for addresses
written without a town, card numbers by their digit pattern and the Luhn checksum.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from training.pii.findings import Finding

Country = Literal["US", "GB", "CA"]  # what pyap2 parses

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# 13-19 digits, grouped by spaces or dashes, not part of a longer number or a decimal.
CARD_CANDIDATE = re.compile(r"(?<!\d)(?<!\d[.,-])\d(?:[ -]?\d){12,18}(?!\d|[.,-]\d|[ -]\d)")
HANDLE = re.compile(r"(?<![\w@./])@\w{1,30}\b")
STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Court|Ct|Boulevard|Blvd|Way|Place|Pl"
    r"|Terrace|Close|Crescent|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq)"
)
STREET_LINE = re.compile(
    rf"\b\d{{1,5}}[A-Za-z]?\s+(?:[A-Z][A-Za-z'.-]*\s+){{1,3}}{STREET_SUFFIX}\b\.?"
    r"(?:,?\s+(?i:apt|apartment|unit|suite|flat|#)\.?\s*\w{1,5})?"
)
POSTCODE_HINT = re.compile(
    r"\b\d{5}(?:-\d{4})?\b|\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b|\b[A-Z]\d[A-Z]\s?\d[A-Z]\d\b",
    re.IGNORECASE,
)
PHONE_CONTEXT = re.compile(r"(?i)\b(?:call|phone|mobile|cell|tel|text|ring|reach|whatsapp)\b")
HOUSE_NUMBER = re.compile(r"(?<!\w)\d{1,5}[A-Za-z]?\b")
URL = re.compile(r"\b(?:https?://|www\.)\S+")
UK_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def find_emails(text: str) -> list[Finding]:
    return [Finding("EMAIL", *m.span()) for m in EMAIL.finditer(text)]


def find_cards(text: str) -> list[Finding]:
    """13-19 digit numbers, spaced or dashed or not, that pass the Luhn check."""
    found = []
    for match in CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(Finding("CARD", *match.span()))
    return found


def find_urls(text: str) -> list[Finding]:
    """Links: kept as they are, and nothing inside them is taken for personal data."""
    return [Finding("URL", *m.span()) for m in URL.finditer(text)]


def find_handles(text: str) -> list[Finding]:
    return [Finding("HANDLE", *m.span()) for m in HANDLE.finditer(text)]


def find_phones(text: str, regions: Sequence[str]) -> list[Finding]:
    """Numbers libphonenumber accepts as valid in one of `regions` (or with a + prefix), and
    merely possible ones right after a word like "call" or "mobile"."""
    import phonenumbers

    found = []
    for region in regions:
        matcher = phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.VALID)
        found += [Finding("PHONE", m.start, m.end) for m in matcher]
        possible = phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.POSSIBLE)
        found += [
            Finding("PHONE", m.start, m.end)
            for m in possible
            if PHONE_CONTEXT.search(text[max(0, m.start - 30) : m.start])
            and _standalone(text, m.start)
        ]
    return found


def _standalone(text: str, start: int) -> bool:
    """Not the tail of a serial or model number such as HX1K-2231-8890."""
    before = text[start - 1 : start] if start else ""
    return not (before.isalnum() or before == "-")


def find_addresses(text: str, countries: Sequence[Country]) -> list[Finding]:
    """Postal addresses with a postcode (pyap2), street lines and UK postcodes."""
    import pyap

    found = [Finding("ADDRESS", *m.span()) for m in STREET_LINE.finditer(text)]
    found += [Finding("ADDRESS", *m.span()) for m in UK_POSTCODE.finditer(text)]
    if not POSTCODE_HINT.search(text):  # pyap is slow, and only addresses with one count
        return found
    for country in countries:
        for address in pyap.parse(text, country=country):
            if address.postal_code:  # without one, pyap also takes "12 if you know there is"
                start = _house_number(text, address.match_start, address.match_end)
                found.append(Finding("ADDRESS", start, address.match_end))
    return found


def _house_number(text: str, start: int, end: int) -> int:
    """pyap's match can begin words early ("this is ... at 88 Harbour Road"): start it at the
    first number that stands alone, where a street address begins."""
    number = HOUSE_NUMBER.search(text, start, end)
    return number.start() if number else start
