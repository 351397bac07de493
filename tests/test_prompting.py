"""Template selection, prompt assembly and citation checks on the sample knowledge base."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.catalog import (
    CatalogError,
    TroubleshootingTemplate,
    check_handoff_replies,
    load_guardrails,
    load_products,
    load_system_prompt,
    load_templates,
    load_yaml,
)
from knowledge.embedding import Embedder
from knowledge.index import SearchHit
from service.config import SAMPLE_KNOWLEDGE_DIR
from service.prompting.builder import PromptBuilder, cited_numbers
from service.prompting.guardrails import Guardrails, Handoff
from service.prompting.scope import follows_up
from service.prompting.selection import TemplateSelector, error_codes

CATALOG = load_products(SAMPLE_KNOWLEDGE_DIR)
TEMPLATES = load_templates(SAMPLE_KNOWLEDGE_DIR, CATALOG)


@pytest.fixture(scope="module")
def selector(embedder: Embedder) -> TemplateSelector:
    return TemplateSelector(TEMPLATES, embedder)


def hit(n: int) -> SearchHit:
    return SearchHit(
        f"c{n}", 1.0, f"text {n}", f"Page {n}", f"docs/p{n}.md", ["Page", f"S{n}"], None
    )


@pytest.mark.parametrize(
    ("text", "codes"),
    [("error E5", {"E5"}), ("it says e-05!", {"E5"}), ("code E 21 again", {"E21"})],
)
def test_error_codes_are_normalised(text: str, codes: set[str]) -> None:
    assert error_codes(text) == codes


@pytest.mark.parametrize(
    ("question", "product", "expected"),
    [
        ("my router shows error E5, what do I do?", "halcyon-router-x1000", "router-e5"),
        ("My router shows error E5", None, "router-e5"),
        ("thermostat says E21", "halcyon-thermostat-t2", "thermostat-e21"),
        ("what colour is the box", "halcyon-router-x1000", None),
        ("my router gets hot and turns itself off", "halcyon-router-x1000", "router-e2"),
        ("how long does the battery last on the c3?", "halcyon-camera-c3", None),
        ("does the x1000 support WPA3?", "halcyon-router-x1000", None),
    ],
)
def test_template_selection(
    selector: TemplateSelector, question: str, product: str | None, expected: str | None
) -> None:
    chosen = selector.select(question, product)
    assert (chosen.id if chosen else None) == expected


def test_a_different_error_code_does_not_pick_the_template(selector: TemplateSelector) -> None:
    chosen = selector.select("router error E5", "halcyon-thermostat-t2")
    assert chosen is None or "E5" not in chosen.match.error_codes


def test_prompt_puts_stable_parts_first_and_the_question_last() -> None:
    template = next(t for t in TEMPLATES if t.id == "router-e5")
    history = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"}]
    built = PromptBuilder(load_system_prompt(SAMPLE_KNOWLEDGE_DIR)).build(
        "E5 again {not a placeholder}",
        [hit(1), hit(2)],
        template,
        history,  # type: ignore[arg-type]
    )
    roles = [m["role"] for m in built.messages]
    assert roles == ["system", "system", "system", "user", "assistant", "user"]
    rules, guide, sources = (m["content"] for m in built.messages[:3])
    assert "Halcyon Home" in rules and template.title in guide
    assert sources.startswith("Sources:") and "[1] Page > S1" in sources
    assert built.messages[-1]["content"] == "E5 again {not a placeholder}"


def test_without_sources_the_prompt_says_so() -> None:
    built = PromptBuilder(load_system_prompt(SAMPLE_KNOWLEDGE_DIR)).build("hi", [], None)
    assert [m["role"] for m in built.messages] == ["system", "system", "user"]
    assert "none found" in built.messages[1]["content"]


def test_citations_outside_the_prompt_are_dropped() -> None:
    assert cited_numbers("Do this [2], then [1] and [7] and [2] again.", 3) == [2, 1]


def test_invalid_template_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("id: broken\nversion: 0\nproduct: x\ntitle: t\nmatch: {}\nsteps: []\n")
    with pytest.raises(CatalogError) as err:
        load_yaml(bad, TroubleshootingTemplate)
    message = str(err.value)
    assert (
        str(bad) in message
        and "version" in message
        and "steps" in message
        and "escalate_when" in message
    )


def test_selection_accuracy_on_the_labelled_questions(selector: TemplateSelector) -> None:
    """Quality regression guard: 97.3% and 92.1% here when written (bench/template_selection.py)."""
    from bench.template_selection import DEVELOPMENT_SETS, HELD_OUT_SETS, accuracy

    for sets, total_at_least, target in [(DEVELOPMENT_SETS, 180, 0.95), (HELD_OUT_SETS, 30, 0.88)]:
        results = [accuracy(selector, path) for path in sets]
        right, total = sum(r[0] for r in results), sum(r[1] for r in results)
        assert total >= total_at_least and right / total >= target, [
            w for r in results for w in r[2]
        ]


@pytest.mark.parametrize(
    "question",
    ["what resolution does the C3 record in?", "can I mount the camera upside down?"],
)
def test_informational_questions_get_no_troubleshooting_guide(
    selector: TemplateSelector, question: str
) -> None:
    assert selector.select(question, "halcyon-camera-c3") is None


def test_a_long_conversation_stays_within_budget_and_keeps_rules_and_question(
    gemma_tokenizer_dir: Path,
) -> None:
    from service.prompting.builder import PromptBudget, token_counter

    count = token_counter(gemma_tokenizer_dir)
    builder = PromptBuilder(
        load_system_prompt(SAMPLE_KNOWLEDGE_DIR), count_tokens=count, budget=PromptBudget(900, 200)
    )
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "words " * 60}
        for i in range(40)
    ]
    hits = [hit(n) for n in range(1, 6)]
    built = builder.build("Is E5 fixed now?", hits, TEMPLATES[0], history)  # type: ignore[arg-type]
    rendered = sum(count(m["content"]) + 4 for m in built.messages)
    assert rendered <= 900
    assert built.messages[-1]["content"] == "Is E5 fixed now?"
    assert built.messages[0]["content"].startswith("You are the customer-support assistant")
    kept_history = [m for m in built.messages if m["role"] != "system"][:-1]
    assert kept_history and "turn 39" in kept_history[-1]["content"]  # the newest survives
    assert "turn 0 " not in " ".join(m["content"] for m in built.messages)  # the oldest goes
    assert built.token_counts["rules"] > 100 and built.token_counts["total"] <= 900


def template(template_id: str) -> TroubleshootingTemplate:
    return next(t for t in TEMPLATES if t.id == template_id)


@pytest.fixture(scope="module")
def guardrails(embedder: Embedder) -> Guardrails:
    return Guardrails(load_guardrails(SAMPLE_KNOWLEDGE_DIR), embedder)


def test_escalation_when_the_customer_meets_a_condition_over_the_conversation(
    guardrails: Guardrails,
) -> None:
    handoff = guardrails.escalation(
        template("router-e5"),
        "my laptop works plugged straight into the modem, the router is still red",
        ["the router shows E5"],
    )
    assert handoff is not None and handoff.reason == "escalation"
    assert handoff.detail.startswith("router-e5 v1: A computer connected directly to the modem")


@pytest.mark.parametrize(
    ("message", "earlier"),
    [
        ("my router shows E5, what should I try first?", []),
        ("my laptop plugged straight into the modem has no internet either", ["router E5"]),
        # the condition was met earlier; a new question must add to it to hand off again
        ("what colour should the modem lights be?", ["restarted the modem, still E5"]),
    ],
)
def test_no_escalation_before_a_condition_is_met(
    guardrails: Guardrails, message: str, earlier: list[str]
) -> None:
    assert guardrails.escalation(template("router-e5"), message, earlier) is None


def test_escalation_needs_a_chosen_template(guardrails: Guardrails) -> None:
    assert guardrails.escalation(None, "restarted the modem and it is still E5", []) is None


@pytest.mark.parametrize(
    "message",
    [
        "I want a human please",
        "agent",
        "Agent!",
        "can I speak to a person",
        "talk to someone",
        "real person",
        "representative",
        "I need to speak with someone",
        "get me a real person now",
        "Tried everything for E5, the router is still red. can someone look at it?",
        "could a technician check my thermostat wiring please",
    ],
)
def test_plain_requests_for_a_person_hand_off(guardrails: Guardrails, message: str) -> None:
    assert guardrails.handoff(message, []) == Handoff("asked_for_human")


@pytest.mark.parametrize(
    "message",
    [
        "my agent app keeps crashing",
        "what is the user agent string of the camera's web page?",
        "how do I add a person to my account",
        "does the doorbell camera detect a person or just motion?",
        "I need an agent app for the hub",
        "can someone else in the house change the thermostat schedule?",
        "can a person walking past set off the camera's motion alerts?",
    ],
)
def test_product_questions_about_agents_and_people_do_not_hand_off(
    guardrails: Guardrails, message: str
) -> None:
    assert guardrails.handoff(message, []) is None


def test_every_escalate_when_condition_has_cues() -> None:
    for t in TEMPLATES:
        assert {rule.condition for rule in t.escalate_cues} == set(
            range(1, len(t.escalate_when) + 1)
        ), t.id


def test_escalation_cues_are_validated_with_file_and_field(tmp_path: Path) -> None:
    directory = tmp_path / "kb"
    (directory / "troubleshooting").mkdir(parents=True)
    (directory / "products.yaml").write_text("products: [{id: p, name: P}]\n")
    path = directory / "troubleshooting" / "t.yaml"
    body = "id: t\nversion: 1\nproduct: p\ntitle: T\nmatch: {}\nsteps: [s]\n"
    body += "escalate_when: [first, second]\n"
    path.write_text(body + "escalate_cues: [{condition: 3, cues: [[still]]}]\n")
    with pytest.raises(CatalogError) as err:
        load_templates(directory, load_products(directory))
    assert str(path) in str(err.value)
    assert "escalate_cues.0.condition: 3" in str(err.value)
    assert "escalate_when.0: condition 1 has no escalate_cues rule" in str(err.value)
    path.write_text(body + "escalate_cues: [{condition: 1, cues: [['(unclosed']]}]\n")
    with pytest.raises(CatalogError, match=r"escalate_cues\.0\.cues: .*not a valid regular"):
        load_templates(directory, load_products(directory))


def test_a_hand_off_gets_its_topics_reply_and_unknown_keys_are_refused(embedder: Embedder) -> None:
    system = load_system_prompt(SAMPLE_KNOWLEDGE_DIR)
    guardrails = load_guardrails(SAMPLE_KNOWLEDGE_DIR)
    check_handoff_replies(SAMPLE_KNOWLEDGE_DIR, system, guardrails)  # the sample's keys are known
    handoff = Guardrails(guardrails, embedder).handoff("there's smoke coming out of it", [])
    assert handoff == Handoff("sensitive_topic", "fire_or_smoke: smoke")
    safety = system.handoff_reply_for(handoff.reason, handoff.detail)
    assert safety == system.handoff_replies["fire_or_smoke"] and "emergency services" in safety
    battery = Guardrails(guardrails, embedder).handoff("the battery has swelled up", [])
    assert battery is not None and "stop charging" in (
        system.handoff_reply_for(battery.reason, battery.detail) or ""
    )
    assert system.handoff_reply_for("frustration") == system.handoff_replies["frustration"]
    assert (
        system.handoff_reply_for("asked_for_human") == system.handoff_reply
    )  # no entry of its own
    typo = system.model_copy(update={"handoff_replies": {"gas_laek": "Leave the building."}})
    with pytest.raises(CatalogError) as err:
        check_handoff_replies(SAMPLE_KNOWLEDGE_DIR, typo, guardrails)
    assert "system.yaml: handoff_replies: gas_laek" in str(err.value) and "gas_leak" in str(
        err.value
    )


T2_CODES = (SAMPLE_KNOWLEDGE_DIR / "docs/halcyon-thermostat-t2/error-codes.md").read_text()
T2_TABLE = T2_CODES.split("## Error code table\n", 1)[1].split("\n## ", 1)[0].strip()


def test_a_long_source_shows_the_row_of_the_code_asked_about_with_its_header() -> None:
    from service.prompting.excerpt import excerpt

    assert len(T2_TABLE) > 1500  # E24 is the fifth row, past the first 700 characters
    shown = excerpt(T2_TABLE, "what does E24 mean on my T2?", 700)
    assert len(shown) <= 700 + 4
    lines = shown.splitlines()
    assert lines[0].startswith("| Code | Meaning") and lines[1].startswith("|---")
    assert lines[2].startswith("| E24 | Heat pump reversing valve")
    # siblings of the asked code would only mislead a small model
    assert not any(f"| E2{n} |" in shown for n in (0, 1, 2, 3, 5, 6, 7, 8, 9))


def test_a_long_source_keeps_its_order_and_marks_what_was_left_out() -> None:
    from service.prompting.excerpt import excerpt

    text = "\n\n".join(
        [
            "Intro about the thermostat and its screen.",
            "Filler about schedules. " * 12,
            "The backup battery lasts up to 2 hours when the C wire loses power.",
            "More filler about geofencing. " * 12,
            "Closing words about the thermostat.",
        ]
    )
    shown = excerpt(text, "how long does the backup battery last?", 200)
    assert shown.startswith("Intro about the thermostat")  # the lead, then the best match
    assert shown.index("Intro") < shown.index("backup battery lasts up to 2 hours")
    assert "\n\n…\n\n" in shown and len(shown) <= 200 + 4


def test_a_source_that_fits_is_shown_whole_and_the_prompt_uses_the_excerpt() -> None:
    from service.prompting.excerpt import excerpt

    assert excerpt("Short text.\n\nTwo paragraphs.", "anything", 700) == (
        "Short text.\n\nTwo paragraphs."
    )
    table = SearchHit("t2", 1.0, T2_TABLE, "Error codes", "docs/t2.md", ["Error codes"], None)
    built = PromptBuilder(load_system_prompt(SAMPLE_KNOWLEDGE_DIR)).build(
        "E26 on my T2", [table], None
    )
    assert "| E26 | Wi-Fi disconnected for more than 10 minutes" in built.messages[-2]["content"]


def test_a_long_paragraph_is_cut_into_sentences_and_the_matching_one_is_shown() -> None:
    from service.prompting.excerpt import excerpt

    options = " ".join(f"Option {n}: Change setting number {n} of the app." for n in range(1, 30))
    text = (
        "App settings Manage your downloaded apps.From Settings, tap Apps. "
        + options
        + " Set as default: Set the app as a default for a certain category of apps."
    )  # one line, as manuals converted from PDF often are
    shown = excerpt(text, "How do I set the app as a default app?", 300)
    assert shown.startswith("App settings Manage your downloaded apps.")
    assert "Set as default: Set the app as a default for a certain category of apps." in shown
    assert " … " in shown and "\n" not in shown and len(shown) <= 300 + 4


@pytest.mark.parametrize(
    ("message", "follow_up"),
    [
        ("Yes, I am.", True),
        ("no she was married", True),
        ("How is it calculated?", True),
        ("where do I find those?", True),
        ("Both of the requirements are true in this case.", True),
        ("what's the capital of Peru", False),
        ("write me a haiku about autumn", False),
        ("how do I reset my Netgear router", False),
        ("my router shows E5 and the internet is down", False),
    ],
)
def test_a_reply_or_a_message_that_points_back_is_a_follow_up(
    message: str, follow_up: bool
) -> None:
    assert follows_up(message) is follow_up
