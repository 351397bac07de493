"""Personal data is scrubbed from realistic support messages, and product facts survive."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import SHARED_DATA
from training.pii import Scrubber
from training.pii.patterns import luhn_valid

TWEETSUMM = SHARED_DATA / "tweetsumm" / "dialogs_with_text.jsonl"

CUSTOMER_MESSAGES = [
    (
        "Hi, my name is Dana Whitfield and my router shows E5. Email me at "
        "dana.whitfield@example.com or call (415) 555-0137.",
        ["Dana Whitfield", "dana.whitfield@example.com", "(415) 555-0137"],
    ),
    (
        "I was charged twice for Halcyon Secure, card 4111 1111 1111 1111. Refund please!",
        ["4111 1111 1111 1111"],
    ),
    ("card number 5555555555554444 if you need it", ["5555555555554444"]),
    (
        "Hello, this is Priya Raman, the camera is at 88 Harbour Road, Leeds LS1 4AB. E40 again",
        ["Priya Raman", "88 Harbour Road", "LS1 4AB"],
    ),
    (
        "I'm Marcus Oyelaran. thermostat says E20. I live at 1290 Oak Avenue, Apt 3B, Denver, "
        "CO 80203.",
        ["Marcus Oyelaran", "1290 Oak Avenue", "80203"],
    ),
    ("node keeps dropping. You can call me on 07700 900461 after 5pm.", ["07700 900461"]),
    ("mesh node E8 (account tnowak@example.com, phone +44 20 7946 0321)", ["tnowak", "7946"]),
    ("camera offline again\n\nThanks,\nHiroshi", ["Hiroshi"]),
    (
        "my wife Jennifer reset it and now it's blinking amber. Mr. Okafor installed it.",
        ["Jennifer", "Okafor"],
    ),
    ("@HalcyonHelp my cam is offline ^SH", ["@HalcyonHelp", "^SH"]),
]

PRODUCT_FACTS = [
    "Open http://192.168.8.1 and use Settings > Network > WAN > MAC Clone.",
    "Aim for −65 dBm or better; below −70 dBm (E41) move the router closer.",
    "Support is available 08:00–20:00, Monday to Saturday, firmware 2.4 or 3.1.",
    "Hold the reset pinhole for 10 seconds; the C3 records 2K at 2560x1440.",
    "Charge with a 5 V 2 A USB-C charger for about 6 hours.",
    "Will it work on 5 GHz? May I ask which LED colour? Mark the activity zone.",
    "My serial number is HX1K-2231-8890 and the model is X1000.",
]


@pytest.mark.parametrize(("message", "personal"), CUSTOMER_MESSAGES)
def test_personal_data_in_customer_messages_is_replaced(message: str, personal: list[str]) -> None:
    scrubbed = Scrubber().scrub(message)
    for piece in personal:
        assert piece not in scrubbed, scrubbed
    assert re.search(r"\[(NAME|EMAIL|PHONE|CARD|ADDRESS|HANDLE)\]", scrubbed)


@pytest.mark.parametrize("text", PRODUCT_FACTS)
def test_product_facts_are_left_alone(text: str) -> None:
    assert Scrubber().scrub(text) == text


def test_card_numbers_are_luhn_checked() -> None:
    scrubber = Scrubber()
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert (
        scrubber.scrub("order 4111 1111 1111 1112 arrived") == "order 4111 1111 1111 1112 arrived"
    )
    assert scrubber.scrub("card 4111-1111-1111-1111.") == "card [CARD]."


def test_scrubbing_counts_each_kind_and_is_idempotent() -> None:
    scrubber = Scrubber()
    once = scrubber.scrub(CUSTOMER_MESSAGES[0][0])
    assert scrubber.counts == {"NAME": 1, "EMAIL": 1, "PHONE": 1}
    assert Scrubber().scrub(once) == once


def tweetsumm_texts(limit: int) -> list[str]:
    if not TWEETSUMM.is_file():
        pytest.skip(f"TweetSumm not found at {TWEETSUMM} (../shared/data is third-party data)")
    with TWEETSUMM.open(encoding="utf-8") as lines:
        dialogues = [json.loads(line) for _, line in zip(range(limit), lines, strict=False)]
    return [turn["text"] for d in dialogues for turn in d["turns"]]


def test_real_customer_care_tweets_lose_handles_phones_and_emails() -> None:
    texts = tweetsumm_texts(300)
    scrubber = Scrubber()
    scrubbed = [scrubber.scrub(t) for t in texts]
    assert scrubber.counts["HANDLE"] > len(texts) // 2  # nearly every tweet addresses someone
    assert scrubber.counts["PHONE"] >= 1 and scrubber.counts["NAME"] >= 10
    for text in scrubbed:
        assert not re.search(r"(?<![\w.])@\w+", text), text
        assert not re.search(r"[\w.+-]+@[\w-]+\.[a-z]{2,}", text), text
        assert Scrubber().find(text) == [], text  # nothing detectable is left
    assert any("https://t.co/" in t for t in scrubbed)  # links are kept as they were
