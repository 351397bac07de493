"""Answer hygiene: the demo adapter's debris is cut while streaming, a copy of the rules is
replaced, and /v1/chat/completions honours max_tokens and temperature.

The debris strings are excerpts of what the demo adapter really wrote
(knowledge/sample/adapters/sample-sft-1/evaluation.json, variant tuned+prompted). The HTTP
tests answer with a scripted engine that implements the engine protocol, so the debris is
deterministic; everything else is real (SQLite, Qdrant, MiniLM, the prompt layer).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from knowledge.catalog import load_system_prompt
from knowledge.embedding import Embedder
from service.app import Overrides, create_app
from service.chat.hygiene import Hygiene
from service.config import SAMPLE_KNOWLEDGE_DIR, Settings
from service.engines.base import (
    ChatMessage,
    Completion,
    EngineEvent,
    EngineHealth,
    SamplingParams,
    TextDelta,
)
from service.store.models import Message
from tests.conftest import new_key

SYSTEM = load_system_prompt(SAMPLE_KNOWLEDGE_DIR)
E5 = "my router shows error E5, what do I do?"

# q001: a good answer, then a customer sign-off with the scrubber's placeholder, then a loop
SIGN_OFF = (
    "E5 means the router sees a working cable to the modem, but the modem isn't giving it "
    "internet [1]. Unplug both the modem and the router and wait 30 seconds. Let me know what "
    "the LED does after this.\n\nThanks,\n[NAME]\nE5 means the router sees a working cable"
)
# q049: the answer, then the prompt's "Sources:" block recited
SOURCES = (
    "E42 means the card isn't detected or can't be read [1]. Take the card out and push it "
    "back in, contacts facing the lens, until it clicks.\n\nSources:\n[1] Storage and "
    "recording > microSD card > Card problems (E42)\nIf the camera can't read the card"
)
# q007: a source block without its "Sources:" line
SOURCE_BLOCK = (
    "If it stays red for more than 5 minutes while the internet works, restart the router in "
    "Settings > System > Reboot.\n\n[1] Troubleshooting slow Wi-Fi > Overheating\nIf the LED"
)
# q015: the few-shot examples' header and an invented customer turn
EXAMPLES = (
    "The router must be switched on for the reset [1]. Hold the reset pinhole on the back for "
    "10 seconds until the LED blinks amber, then release.\n\nAnswers our team rated good for "
    "similar questions (follow their style; take facts only from the sources):\nCustomer: "
    "need to reset my x1000"
)
NEXT_TURN = "Hold the reset pinhole for 10 seconds, then release.\nCustomer: thanks, and E4?"
# q041: an invented FAQ question, answered on the next line
FAQ = (
    "Yes. The T2 supports heat pumps with up to 2 compressor stages plus auxiliary or "
    "emergency heat [1]. Both O and B reversing valves are available.\n\nDoes it work with "
    "electric baseboard heaters?\nYes. The T2 supports heat pumps"
)
# q018: the same sentence over and over
LOOP = (
    "The X1000 does not support 6 GHz [1]. The Wi-Fi 6E is the default, and the X1000 does "
    "not support 6 GHz [1]." + " The X1000 does not support 6 GHz [1]." * 6
)
# q044: the whole paragraph again
PARAGRAPH = (
    "The T2 has a 3-year limited warranty from purchase. I can connect you with our support "
    "team to start a claim.\n\n"
) * 3
# q034 and q020: junk glued to the last full stop
GLUED = "Reassure the customer that the T2 keeps heating while offline.saraba\nThanks for the"
# q033: the rules recited after a good start
LEAK = (
    "E24 means the T2 keeps heating and cooling while battery power lasts (up to 2 hours), then "
    "the screen turns off. Please don't ask for passwords or full card numbers. If it's unclear "
    "which product the customer means, ask one short question to find out before giving "
    "steps. Also, when a troubleshooting template applies, ask its questions only for "
    "information the customer hasn't already given, then give its steps in order."
)
# a template's instruction lines, as the prompt builder writes them
TEMPLATE_TEXT = (
    "Check the cable goes into the blue WAN port.\nAsk the customer, if not known: Which "
    "lights are on?\nHand over to a human agent when: the modem works"
)

# s10 q1, an adapter trained with doc2dial: one phrase over and over inside a sentence
PHRASE_LOOP = (
    "GPS is the most important tool for finding your device [1]. Tap Location, tap Settings, "
    "tap GPS, tap Auto, tap Advanced, tap Advanced, tap Advanced, tap Advanced, tap Advanced, "
    "tap Advanced, tap Advanced, tap"
)

CASES = [
    (SIGN_OFF, "cut_debris", "sign_off", "Let me know what the LED does after this."),
    (SOURCES, "cut_debris", "sources_list", "until it clicks."),
    (SOURCE_BLOCK, "cut_debris", "sources_list", "System > Reboot."),
    (EXAMPLES, "cut_debris", "prompt_text", "then release."),
    (NEXT_TURN, "cut_debris", "next_turn", "then release."),
    (FAQ, "cut_debris", "invented_question", "valves are available."),
    (LOOP, "cut_repeat", "repeated_sentence", "and the X1000 does not support 6 GHz [1]."),
    (PARAGRAPH, "cut_repeat", "repeated_paragraph", "to start a claim."),
    (PHRASE_LOOP, "cut_repeat", "repeated_phrase", "for finding your device [1]."),
    (GLUED, "cut_debris", "glued_junk", "while offline."),
    (TEMPLATE_TEXT, "cut_debris", "prompt_text", "the blue WAN port."),
]


@pytest.fixture(scope="module")
def hygiene() -> Hygiene:
    return Hygiene(SYSTEM)


@pytest.mark.parametrize(("text", "reason", "rule", "ending"), CASES)
def test_debris_is_cut_at_its_first_character(
    hygiene: Hygiene, text: str, reason: str, rule: str, ending: str
) -> None:
    cleaned = hygiene.clean(text)
    assert cleaned.verdict is not None
    assert (cleaned.verdict.reason, cleaned.verdict.rule) == (reason, rule)
    assert cleaned.text.endswith(ending) and not cleaned.replaced
    assert text.startswith(cleaned.text)


@pytest.mark.parametrize(("text", "reason", "rule", "ending"), CASES)
def test_streaming_never_sends_what_is_cut(
    hygiene: Hygiene, text: str, reason: str, rule: str, ending: str
) -> None:
    guard = hygiene.guard()
    sent = ""
    for char in text:  # one character at a time: the worst case for a lookahead
        sent += guard.feed(char)
        if guard.verdict is not None:
            break
    sent += guard.finish()
    if rule == "repeated_phrase":  # a loop shows only after it began: cut after what was sent
        assert "tap Advanced, tap Advanced, tap Advanced" not in sent
        assert sent.rstrip(" ,") == guard.result().text and not guard.retracted
        assert guard.result().text.startswith(hygiene.clean(text).text)
        return
    assert sent.rstrip() == guard.result().text == hygiene.clean(text).text
    assert not guard.retracted


@pytest.mark.parametrize(
    "text",
    [
        "Open Settings > Wi-Fi > Wi-Fi Direct and tap the printer [1].",
        "Enter 0 0 0 0 as the PIN, then tap OK, OK again to confirm [2].",
        "Press the button twice (press, press) and wait [1]. Then press it again.",
        # doc2dial, sample-sft-2: the web address was cut at "www." as glued junk
        "Please have it ready online at www.motorvehicles.ny.gov or by mail [1].",
        "Apply at studentaid.gov/repayment or write to help@studentaid.gov [2].",
    ],
)
def test_a_phrase_said_twice_or_a_web_address_is_no_debris(hygiene: Hygiene, text: str) -> None:
    guard = hygiene.guard()
    sent = "".join(guard.feed(char) for char in text) + guard.finish()
    assert guard.verdict is None and sent == text == hygiene.clean(text).text


def test_junk_glued_to_the_last_full_stop_is_cut_when_the_answer_ends(hygiene: Hygiene) -> None:
    guard = hygiene.guard()
    text = "The T2 keeps heating while offline.saraba"
    sent = "".join(guard.feed(char) for char in text) + guard.finish()
    assert guard.verdict is not None and guard.verdict.rule == "glued_junk"
    assert sent == "The T2 keeps heating while offline." == guard.result().text


# seen live (demo adapter, "E42 on my camera, the sd card is not working"): the question again
# as the next turn, with another error code and junk tokens
ECHOED = (
    "E42 means the card cannot be read [1]. Push it back in, contacts facing the lens, until it "
    "clicks.\n\nE43 on my camera, the sd card is not working anlamına\nвом\nE43 means the card"
)
# q015, variant tuned: tokens of other scripts after the last full stop
FOREIGN = "I'll have it back to you in a few days.อบคุณ\n那我再麻煩給我回來的\nthanks"


@pytest.mark.parametrize(
    ("text", "question", "rule", "ending"),
    [
        (ECHOED, "E42 on my camera, the sd card is not working", "question_echo", "clicks."),
        (FOREIGN, "how do i factory reset the x1000?", "foreign_script", "in a few days."),
    ],
)
def test_the_question_again_or_another_script_is_cut(
    hygiene: Hygiene, text: str, question: str, rule: str, ending: str
) -> None:
    cleaned = hygiene.clean(text, question=question)
    assert cleaned.verdict is not None and cleaned.verdict.rule == rule
    assert cleaned.text.endswith(ending)
    guard = hygiene.guard(question=question)
    sent = "".join(guard.feed(char) for char in text) + guard.finish()
    assert sent.rstrip() == cleaned.text and not guard.retracted


def test_template_text_cut_off_by_the_length_cap_is_cut_too(hygiene: Hygiene) -> None:
    # seen live: the last words of a 192-token answer were the start of a template label
    text = "Check Settings > Device Info > Wi-Fi Signal. Ask the customer, if not"
    guard = hygiene.guard()
    sent = "".join(guard.feed(text[i : i + 4]) for i in range(0, len(text), 4)) + guard.finish()
    assert sent.rstrip() == guard.result().text == "Check Settings > Device Info > Wi-Fi Signal."
    assert guard.verdict is not None and guard.verdict.rule == "prompt_text"


def test_the_scripts_of_the_question_and_sources_are_allowed(hygiene: Hygiene) -> None:
    answer = "Откройте Settings > Wireless и выберите 5 GHz [1]."
    assert hygiene.clean(answer, question="Как включить 5 ГГц на роутере?").verdict is None
    assert hygiene.clean("Yes. 1080p is shown as 1080p [1].", question="1080p?").verdict is None


def test_a_clean_answer_streams_at_once_and_whole(hygiene: Hygiene) -> None:
    answer = (
        "E5 means the modem is not giving the router internet [1].\n\n1. Unplug the modem and "
        "the router for 30 seconds.\n2. Plug in the modem, wait 2 minutes, then the router.\n"
        "Which lights are on now?"
    )
    guard = hygiene.guard()
    first = guard.feed(answer[:12])
    assert first == answer[:12]  # the first words are not held back: no time to first token lost
    rest = guard.feed(answer[12:]) + guard.finish()
    assert first + rest == answer and guard.verdict is None


def test_a_copy_of_the_rules_is_replaced_by_the_low_confidence_reply(hygiene: Hygiene) -> None:
    cleaned = hygiene.clean(LEAK)
    assert cleaned.verdict is not None
    assert (cleaned.verdict.reason, cleaned.verdict.rule) == ("prompt_leak", "rules_copy")
    assert cleaned.replaced and cleaned.text == SYSTEM.low_confidence_reply


def test_what_the_sources_or_the_brand_say_is_no_leak(hygiene: Hygiene) -> None:
    products = (
        "I can help with Halcyon Home products: the X1000 Wi-Fi 6 Router, the T2 Smart "
        "Thermostat and the C3 Outdoor Security Camera."  # the out-of-scope reply says it too
    )
    assert hygiene.clean(products).verdict is None
    rule = (
        "Never ask for passwords or full card numbers, and never guess settings, prices or dates."
    )
    assert hygiene.clean(rule).verdict is not None
    assert hygiene.clean(rule, sources=[f"Our policy: {rule}"]).verdict is None


def test_an_echoed_system_prompt_is_never_sent(hygiene: Hygiene) -> None:
    echo = (  # the base model's answer to q001: its prompt, from the first word
        "You are the customer-support assistant of Halcyon Home. Voice: friendly, concise, "
        "plain language; short numbered steps.\nRules:\n- Answer only from the numbered "
        "sources provided; cite them like [1]."
    )
    guard = hygiene.guard()
    sent = "".join(guard.feed(echo[i : i + 3]) for i in range(0, len(echo), 3))
    sent += guard.finish()
    assert sent == SYSTEM.low_confidence_reply  # the reply streams in place of the echo
    cleaned = guard.result()
    assert cleaned.replaced and not guard.retracted and cleaned.verdict is not None
    assert (cleaned.verdict.reason, cleaned.verdict.rule) == ("prompt_leak", "rules_header")


def test_an_engine_that_stopped_on_a_stop_string_is_recorded_as_a_cut(hygiene: Hygiene) -> None:
    guard = hygiene.guard()
    text = "Take the card out and push it back in until it clicks."
    sent = guard.feed(text)
    guard.stopped_on("\nSources:")  # the engine matched it: the marker never arrives
    sent += guard.finish()
    cleaned = guard.result()
    assert sent == cleaned.text == text and not guard.retracted
    assert cleaned.verdict is not None and cleaned.verdict.rule == "sources_list"


def test_too_little_left_after_a_cut_is_replaced(hygiene: Hygiene) -> None:
    cleaned = hygiene.clean("Sure.\nSources:\n[1] Factory reset > Reset from the app")
    assert cleaned.replaced and cleaned.text == SYSTEM.low_confidence_reply
    assert cleaned.verdict is not None and cleaned.verdict.rule == "sources_list"


# seen on doc2dial turns the scope guard used to refuse: the model announces a hand-off it
# cannot make, and the customer would wait for no one
OFFER = "Would you like me to connect you with a member of our support team?"
PROMISES = [
    (
        "I m sorry about the trouble. I'll connect you with a member of our support team now.",
        "I m sorry about the trouble. Would you like me to connect you with a member of our "
        "support team?",
    ),
    ("Yes. I'll connect you with our team about eligibility.", f"Yes. {OFFER}"),
    (  # seen live: "yes, I already did that" in a router chat
        "Yes, I'll connect you with our support team now. Please have the modem's own lights "
        "checked first, then power cycle in the right order.",
        OFFER,
    ),
    (
        "Unplug the router for 30 seconds [1].\nLet me transfer you to a technician.",
        "Unplug the router for 30 seconds [1]. Would you like me to connect you with a member of "
        "our support team?",
    ),
]


@pytest.mark.parametrize(("text", "shown"), PROMISES)
def test_a_hand_off_the_model_promises_becomes_an_offer(
    hygiene: Hygiene, text: str, shown: str
) -> None:
    guard = hygiene.guard()
    sent = "".join(guard.feed(char) for char in text) + guard.finish()  # the worst case
    assert "I'll" not in sent and "Let me" not in sent and "Yes," not in sent  # not a character
    assert sent.strip() == guard.result().text == shown and not guard.retracted
    assert guard.verdict is not None and guard.verdict.rule == "handoff_promise"


@pytest.mark.parametrize(
    "text",
    [
        "I can connect you with our support team if the light stays red.",
        "Yes, it works with Alexa [1]. Let me know if the light stays red.",
        "It will connect to the 2.4 GHz network only [1].",
        "I'd pass the cable through the wall plate first [2].",
    ],
)
def test_an_offer_or_a_product_that_connects_is_no_promise(hygiene: Hygiene, text: str) -> None:
    assert hygiene.clean(text).verdict is None


def test_the_real_answers_are_cut_and_score_better() -> None:
    from bench.answer_hygiene import EVALUATION, docs_text, product_of
    from training.evaluation.metrics import token_f1

    hygiene = Hygiene(SYSTEM)
    before, after, judged = 0.0, 0.0, 0
    for case in json.loads(EVALUATION.read_text(encoding="utf-8"))["answers"]:
        answer = case["variants"]["tuned+prompted"]
        if answer["outcome"] != "model":
            continue
        cleaned = hygiene.clean(answer["text"], [docs_text(product_of(case))])
        judged += cleaned.verdict is not None
        before += token_f1(answer["text"], case["reference"])
        after += token_f1(cleaned.text, case["reference"])
    assert judged >= 40 and after > before * 1.2


class ScriptedEngine:
    """Answers every prompt with the same text, a few characters per delta, and records the
    sampling it was asked for and how many deltas it yielded before its stream was closed."""

    def __init__(self, text: str, piece: int = 4) -> None:
        self.pieces = [text[i : i + piece] for i in range(0, len(text), piece)]
        self.params: list[SamplingParams] = []
        self.yielded: list[int] = []

    @property
    def model_name(self) -> str:
        return "scripted"

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def stream(
        self, messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None = None
    ) -> AsyncGenerator[EngineEvent]:
        self.params.append(params)
        count = 0
        try:
            for piece in self.pieces[: params.max_tokens]:
                yield TextDelta(piece)
                count += 1
            yield Completion(900, count, 0.01, "length" if count == params.max_tokens else "stop")
        finally:
            self.yielded.append(count)

    async def health(self) -> EngineHealth:
        return EngineHealth(ok=True, model="scripted")

    async def list_adapters(self) -> list[str]:
        return []

    async def load_adapter(self, name: str, path: str) -> None:
        pass

    async def unload_adapter(self, name: str) -> None:
        pass


@pytest.fixture
def scripted(request: pytest.FixtureRequest) -> ScriptedEngine:
    return ScriptedEngine(getattr(request, "param", SIGN_OFF))


@pytest.fixture
def app_client(
    settings: Settings, embedder: Embedder, scripted: ScriptedEngine
) -> Iterator[TestClient]:
    settings = settings.model_copy(
        update={"engine": settings.engine.model_copy(update={"max_new_tokens": 192})}
    )
    app = create_app(settings, Overrides(engine=scripted, embedder=embedder))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {new_key(client)}"
        yield client


def sse(client: TestClient, url: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    name = "message"
    with client.stream("POST", url, json=body, headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and line != "data: [DONE]":
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def last_answer(settings: Settings) -> Any:
    with Session(create_engine(settings.db_url)) as s:
        query = select(Message).where(Message.role == "assistant").order_by(Message.seq.desc())
        return s.scalars(query).first()


def test_a_debris_laden_stream_is_cut_and_the_engine_stopped(
    app_client: TestClient, settings: Settings, scripted: ScriptedEngine
) -> None:
    events = sse(app_client, "/v1/chat", {"message": E5})
    streamed = "".join(e["text"] for name, e in events if name == "token")
    final = events[-1][1]
    assert streamed.endswith("Let me know what the LED does after this.")
    assert "Thanks" not in streamed and "[NAME]" not in streamed
    assert final["answer"] == streamed.strip() and not final["replaced"]
    assert (final["finish_reason"], final["cleaned"]) == ("cut_debris", "cut_debris:sign_off")
    assert scripted.yielded[-1] < len(scripted.pieces)  # the engine stream was closed early
    assert scripted.params[-1].stop and "\nThanks," in scripted.params[-1].stop
    stored = last_answer(settings)
    assert stored.content == final["answer"] and stored.finish_reason == "cut_debris"
    assert stored.flags == ["cut_debris:sign_off"] and "\nThanks," in stored.raw_content


@pytest.mark.parametrize("scripted", [LEAK], indirect=True)
def test_a_leak_is_replaced_counted_and_stored_with_its_reason(
    app_client: TestClient, settings: Settings
) -> None:
    events = sse(app_client, "/v1/chat", {"message": E5})
    streamed = "".join(e["text"] for name, e in events if name == "token")
    final = events[-1][1]
    assert streamed.startswith("E24 means")  # sent before the copy was recognisable
    assert final["answer"] == SYSTEM.low_confidence_reply and final["replaced"] is True
    assert final["finish_reason"] == "prompt_leak" and final["citations"] == []
    as_json = app_client.post("/v1/chat", json={"message": E5}).json()
    assert as_json["answer"] == SYSTEM.low_confidence_reply and as_json["replaced"]
    stored = last_answer(settings)
    assert (stored.content, stored.finish_reason) == (SYSTEM.low_confidence_reply, "prompt_leak")
    assert (
        stored.flags == ["prompt_leak:rules_copy"] and "unclear which product" in stored.raw_content
    )
    body = {"messages": [{"role": "user", "content": E5}], "stream": True}
    last_chunk = sse(app_client, "/v1/chat/completions", body)[-1][1]
    assert last_chunk["tunedesk"]["replaced"] is True
    assert last_chunk["tunedesk"]["answer"] == SYSTEM.low_confidence_reply
    metrics = app_client.get("/metrics").text
    counted = (
        'tunedesk_cleaned_answers_total{model_version="base",product="halcyon-router-x1000",'
        'reason="prompt_leak",replaced="true",rule="rules_copy",tenant="default"} 3.0'
    )
    assert counted in metrics


ECHO = "You are the customer-support assistant of Halcyon Home. Voice: friendly, concise."


@pytest.mark.parametrize("scripted", [ECHO], indirect=True)
def test_an_echoed_system_prompt_streams_the_low_confidence_reply(
    app_client: TestClient, scripted: ScriptedEngine
) -> None:
    events = sse(app_client, "/v1/chat", {"message": E5})
    streamed = "".join(e["text"] for name, e in events if name == "token")
    final = events[-1][1]
    assert streamed == final["answer"] == SYSTEM.low_confidence_reply and not final["replaced"]
    assert (final["finish_reason"], final["cleaned"]) == ("prompt_leak", "prompt_leak:rules_header")
    assert scripted.yielded[-1] < len(scripted.pieces)


def completions(client: TestClient, **body: Any) -> Any:
    messages = [{"role": "user", "content": E5}]
    return client.post("/v1/chat/completions", json={"messages": messages, **body})


def test_max_tokens_and_temperature_reach_the_engine_within_the_cap(
    app_client: TestClient, scripted: ScriptedEngine
) -> None:
    r = completions(app_client, max_tokens=5, temperature=0.7)
    assert r.status_code == 200, r.text
    assert (scripted.params[-1].max_tokens, scripted.params[-1].temperature) == (5, 0.7)
    assert r.json()["choices"][0]["finish_reason"] == "length"
    completions(app_client, max_completion_tokens=7, max_tokens=50)
    assert scripted.params[-1].max_tokens == 7  # max_completion_tokens wins, as in OpenAI's API
    completions(app_client, max_tokens=100_000)
    assert scripted.params[-1].max_tokens == 192  # clamped to engine.max_new_tokens
    assert scripted.params[-1].temperature == 0.0  # the configured one when none is sent
    assert completions(app_client, temperature=2.5).status_code == 422
    app_client.post("/v1/chat", json={"message": E5})
    assert scripted.params[-1].max_tokens == 192  # other routes keep the configured sampling


def test_chat_completions_return_the_cleaned_answer(app_client: TestClient) -> None:
    r = completions(app_client)
    body = r.json()
    content = body["choices"][0]["message"]["content"]
    assert content.endswith("Let me know what the LED does after this.")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["tunedesk"]["cleaned"] == "cut_debris:sign_off"
    body = {"messages": [{"role": "user", "content": E5}], "stream": True}
    events = sse(app_client, "/v1/chat/completions", body)
    chunks = [e for _, e in events if e.get("object") == "chat.completion.chunk"]
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert streamed.strip() == content and "Thanks" not in streamed
    assert chunks[-1]["tunedesk"]["replaced"] is False
