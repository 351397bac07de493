"""`tunedesk eval answers`: four variants on the tiny model, and metrics checked by hand."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from knowledge.catalog import load_system_prompt
from knowledge.index import SearchHit
from service.chat.hygiene import Hygiene
from service.config import SAMPLE_KNOWLEDGE_DIR
from service.engines.base import ChatMessage, SamplingParams
from service.prompting.builder import PromptBuilder
from tests.test_answer_hygiene import ScriptedEngine
from training.cli import main
from training.evaluation.cases import AnswerCase, load_cases
from training.evaluation.metrics import (
    citations_correct,
    echoes_prompt,
    is_refusal,
    normalize,
    offers_human,
    rouge_l,
    token_f1,
)
from training.evaluation.runner import answer_all
from training.evaluation.scoring import score_answer, summarize
from training.evaluation.variants import Plan, Variant, canned_replies, parse_variants

ROUTER = "halcyon-router-x1000"
DOCS: list[dict[str, Any]] = [
    {
        "id": "e5",
        "title": "Error E5",
        "product": ROUTER,
        "text": "E5 means the modem gives the router no internet. Restart the modem, wait two "
        "minutes, then restart the router.",
    },
    {
        "id": "e3",
        "title": "Error E3",
        "product": ROUTER,
        "text": "E3 means no cable is in the blue WAN port. Plug the modem's cable into it.",
    },
    {
        "id": "reset",
        "title": "Factory reset",
        "product": ROUTER,
        "text": "Hold the reset button for 10 seconds until the LED blinks purple.",
    },
]
SYSTEM = load_system_prompt(SAMPLE_KNOWLEDGE_DIR)
QUESTIONS: list[dict[str, Any]] = [
    {
        "id": "q1",
        "question": "My X1000 router shows E5, what now?",
        "product": ROUTER,
        "answer": "Restart the modem, wait two minutes, then restart the router.",
        "doc_ids": ["e5"],
        "type": "in_scope",
    },
    {
        "id": "q2",
        "question": "What does E3 mean on the X1000 router?",
        "product": ROUTER,
        "answer": "No cable is in the blue WAN port.",
        "doc_ids": ["e3"],
        "type": "in_scope",
    },
    {
        "id": "q3",
        "question": "What is a good recipe for banana bread?",
        "product": None,
        "answer": SYSTEM.out_of_scope_reply,
        "doc_ids": [],
        "type": "out_of_scope",
    },
]


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("E5 means no internet [2].", "e5 means NO internet", 1.0),  # case, marks, punctuation
        ("The router restarts.", "Restart the router", 0.5),  # router/router; articles dropped
        ("wifi wifi wifi", "wifi router", 0.4),  # overlap counted once: P 1/3, R 1/2
        ("Unplug it.", "Call support", 0.0),
        ("", "", 1.0),
        ("", "Restart it", 0.0),
    ],
)
def test_token_f1_on_hand_checked_pairs(prediction: str, reference: str, expected: float) -> None:
    assert token_f1(prediction, reference) == pytest.approx(expected)


def test_normalize_and_rouge_l_by_hand() -> None:
    assert normalize("The LED [1] blinks—purple!") == "led blinks purple"
    assert rouge_l("Restart the router [1].", "restart the router") == pytest.approx(1.0)
    # LCS "restart router" = 2 words: precision 2/2, recall 2/3, F = 0.8
    assert rouge_l("restart router", "restart the router") == pytest.approx(0.8)
    assert rouge_l("restarting routers", "restart the router") == pytest.approx(0.8)  # stemmed


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        (SYSTEM.out_of_scope_reply, True),
        ("  " + SYSTEM.low_confidence_reply.replace(" ", "\n", 1), True),  # spacing ignored
        ("Sorry, I can only help with Halcyon Home products.", True),
        ("I can't help with that, but a member of our team can.", True),
        ("I'm not able to help with banana bread.", True),
        ("I'm sorry to hear that. Restart the router [1].", False),
        ("You can help by restarting the modem first.", False),
        ("Only the blue WAN port works for the modem cable.", False),
    ],
)
def test_refusal_detection_on_hand_checked_answers(answer: str, refused: bool) -> None:
    assert is_refusal(answer, canned_replies(SYSTEM)) is refused


def test_an_answer_that_copies_the_prompt_back_is_an_echo() -> None:
    rules = "You are the customer-support assistant of Halcyon Home.\nRules:\n- Only help with "
    rules += "Halcyon Home products; cite sources like [1]."
    copied = rules.replace("\n", " ") + " And more text the model made up."
    assert echoes_prompt(copied, [rules, "Sources: ..."])
    assert not echoes_prompt("Restart the modem first, then the router [1].", [rules])
    assert not echoes_prompt("You are", [rules])  # too short to call
    assert is_refusal(copied)  # its words alone would pass for a refusal: scoring checks echoes


def test_hand_off_and_citation_checks() -> None:
    assert offers_human(SYSTEM.handoff_reply or "")
    assert SYSTEM.handoff_replies and all(offers_human(r) for r in SYSTEM.handoff_replies.values())
    assert offers_human("Shall I connect you with a member of our support team?")
    assert not offers_human("Restart the router.")
    assert citations_correct(["e5"], ["e5", "e3"])
    assert not citations_correct(["e5", "reset"], ["e5"])  # one wrong source spoils it
    assert not citations_correct([], ["e5"])  # no citation is no evidence


def test_variants_are_parsed_in_order_and_unknown_ones_refused() -> None:
    variants = parse_variants("tuned+prompted, base,base")
    assert [(v.name, v.prompted, v.tuned) for v in variants] == [
        ("tuned+prompted", True, True),
        ("base", False, False),
    ]
    with pytest.raises(ValueError, match="unknown variant"):
        parse_variants("base,fancy")


def test_held_out_rows_bring_their_prompt_and_cited_sources(tmp_path: Path) -> None:
    hits = [
        SearchHit(d["id"], 1.0, d["text"], d["title"], f"docs/{d['id']}.md", [d["title"]], ROUTER)
        for d in DOCS
    ]
    built = PromptBuilder(SYSTEM).build("It says E3?", hits, None)
    row: dict[str, Any] = {
        "id": "x",
        "message_id": "conv-9-m2",
        "product": ROUTER,
        "prompt": built.messages,
        "completion": [{"role": "assistant", "content": "E3: no WAN cable [2]."}],
    }
    write_jsonl(tmp_path / "v1" / "sft" / "eval.jsonl", [row])
    (case,) = load_cases(tmp_path / "v1").cases
    assert case.question == "It says E3?" and case.prompt == built.messages
    assert case.prompt_sources == ["Error E5", "Error E3", "Factory reset"]
    assert case.gold_sources == ["Error E3"]


@pytest.mark.slow
def test_eval_answers_command_end_to_end_on_the_tiny_model(
    tmp_path: Path,
    tiny_model_dir: Path,
    tiny_adapters: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TUNEDESK_MODEL__PATH", str(tiny_model_dir))
    monkeypatch.setenv("TUNEDESK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TUNEDESK_ENGINE__MAX_NEW_TOKENS", "6")
    folder = tmp_path / "set"
    write_jsonl(folder / "docs.jsonl", DOCS)
    write_jsonl(folder / "questions.jsonl", QUESTIONS)
    args = ["eval", "answers", "--set", str(folder), "--adapter", str(tiny_adapters["alpha"])]
    result = CliRunner().invoke(main, [*args, "--json", "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{") :])
    scores = {v["variant"]: v for v in data["variants"]}
    assert list(scores) == ["base", "prompted", "tuned", "tuned+prompted"]
    assert all(v["questions"] == 3 for v in scores.values())
    # prompted variants refuse the off-topic question with the brand's reply, as the service does
    assert scores["prompted"]["refusal_rate"] == scores["tuned+prompted"]["refusal_rate"] == 1.0
    assert scores["base"]["refusal_rate"] == 0.0 and scores["base"]["citation_accuracy"] is None
    assert scores["prompted"]["prompt_tokens"] > 5 * scores["base"]["prompt_tokens"]
    assert scores["base"]["model_answers"] == 3 and scores["prompted"]["model_answers"] == 2
    off_topic = next(a for a in data["answers"] if a["id"] == "q3")["variants"]
    assert off_topic["prompted"]["token_f1"] == 1.0 and off_topic["prompted"]["ttft_s"] is None
    for row in data["answers"]:  # each recorded score is the metric of the recorded text
        for answer in row["variants"].values():
            assert answer["token_f1"] == round(token_f1(answer["text"], row["reference"]), 4)
    tuned = [a["variants"]["tuned"]["text"] for a in data["answers"]]
    assert tuned != [a["variants"]["base"]["text"] for a in data["answers"]]  # adapter used
    report = tmp_path / "report"
    assert (report / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (report / "evaluation.md").read_text()
    assert "| tuned+prompted |" in page and "evaluation.png" in page


@pytest.mark.slow
def test_eval_answers_on_held_out_rated_transcripts(
    tmp_path: Path,
    tiny_model_dir: Path,
    tiny_adapters: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TUNEDESK_MODEL__PATH", str(tiny_model_dir))
    monkeypatch.setenv("TUNEDESK_ENGINE__MAX_NEW_TOKENS", "4")
    hits = [
        SearchHit(d["id"], 1.0, d["text"], d["title"], f"docs/{d['id']}.md", [d["title"]], ROUTER)
        for d in DOCS
    ]
    prompt = PromptBuilder(SYSTEM).build("It says E3?", hits, None).messages
    answer = [{"role": "assistant", "content": "E3: no WAN cable [2]."}]
    write_jsonl(
        tmp_path / "v1" / "sft" / "eval.jsonl",
        [{"id": "x", "prompt": prompt, "completion": answer}],
    )
    args = [
        "eval",
        "answers",
        "--set",
        str(tmp_path / "v1"),
        "--adapter",
        str(tiny_adapters["beta"]),
    ]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{") :])
    scores = {v["variant"]: v for v in data["variants"]}
    assert data["setup"]["set_kind"] == "dataset"
    # prompted variants get the recorded prompt itself, with its numbered sources
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    expected = len(tokenizer(rendered, add_special_tokens=False).input_ids)
    assert scores["prompted"]["prompt_tokens"] == expected
    assert scores["prompted"]["citation_accuracy"] == 0.0  # a random model cites nothing
    assert scores["base"]["citation_accuracy"] is None
    assert scores["tuned"]["prompt_tokens"] == scores["base"]["prompt_tokens"] < expected


def test_tuned_variants_without_an_adapter_are_refused(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "set" / "questions.jsonl", QUESTIONS)
    result = CliRunner().invoke(main, ["eval", "answers", "--set", str(tmp_path / "set")])
    assert result.exit_code == 2
    assert "--adapter" in result.output


def test_a_sample_keeps_every_kind_in_file_order_and_is_repeatable(tmp_path: Path) -> None:
    rows = [{**QUESTIONS[n % 3], "id": f"q{n:02d}"} for n in range(30)]  # 20 in, 10 out of scope
    write_jsonl(tmp_path / "questions.jsonl", rows)
    first = [c.id for c in load_cases(tmp_path, sample=6, seed=1).cases]
    assert first == [c.id for c in load_cases(tmp_path, sample=6, seed=1).cases]
    assert first == sorted(first) and len(first) == 6
    kinds = [c.kind for c in load_cases(tmp_path, sample=6, seed=1).cases]
    assert sorted(kinds) == ["in_scope"] * 4 + ["out_of_scope"] * 2


def test_questions_seen_in_training_can_be_left_out(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "set" / "questions.jsonl", QUESTIONS)
    asked = {"role": "user", "content": "what does E3 mean on  the X1000 router?"}
    row = {"id": "t1", "prompt": [asked], "completion": [{"role": "assistant", "content": "."}]}
    write_jsonl(tmp_path / "v1" / "sft" / "train.jsonl", [row])
    cases = load_cases(tmp_path / "set", exclude_seen=tmp_path / "v1")
    assert [c.id for c in cases.cases] == ["q1", "q3"] and cases.left_out == ["q2"]


class _OnePlan:
    """Every question gets the same numbered source."""

    def plan(self, case: AnswerCase) -> Plan:
        messages: list[ChatMessage] = [{"role": "user", "content": case.question}]
        sources = ["E5 means no internet from the modem."]
        return Plan(messages, ["router/e5"], ["c1"], sources, prompt_tokens=321)


async def test_eval_scores_what_the_service_would_send_and_stops_where_it_would() -> None:
    """With the service's hygiene, an answer that rambles into a sign-off is cut there (and
    its generation stopped), one that recites the rules is a leak, one that ends is ended."""
    system = load_system_prompt(SAMPLE_KNOWLEDGE_DIR)
    ramble = "E5 means the modem gives no internet [1]. Restart it.\nThanks, [NAME]\n" + "x " * 200
    leak = "You are the customer-support assistant of Halcyon Home. " + " ".join(system.rules)
    cases = [AnswerCase(id="q", question="E5 on my router?", reference="Restart the modem [1].")]
    params = SamplingParams(max_tokens=60)
    hygiene = Hygiene(system)
    rambling = ScriptedEngine(ramble)
    (cut,) = await answer_all(rambling, Variant("prompted"), _OnePlan(), cases, params, None,
                              hygiene=hygiene)  # fmt: skip
    assert cut.text == "E5 means the modem gives no internet [1]. Restart it."
    assert cut.cited == ["router/e5"] and cut.cut_rule is not None and not cut.ended_by_model
    assert rambling.yielded[0] < len(rambling.pieces) // 2  # generation stopped at the cut
    assert cut.prompt_tokens == 321  # the engine's count never came: the prompt builder's
    (leaked,) = await answer_all(ScriptedEngine(leak), Variant("prompted"), _OnePlan(), cases,
                                 params, None, hygiene=hygiene)  # fmt: skip
    assert leaked.leaked and leaked.text == system.low_confidence_reply
    (ended,) = await answer_all(ScriptedEngine("Restart the modem [1]."), Variant("prompted"),
                                _OnePlan(), cases, params, None, hygiene=hygiene)  # fmt: skip
    assert ended.ended_by_model and ended.text == "Restart the modem [1]."
    (raw,) = await answer_all(ScriptedEngine(ramble), Variant("prompted"), _OnePlan(), cases,
                              params, None)  # fmt: skip
    assert raw.text == raw.raw_text and raw.finish_reason == "length"
    scored = summarize(
        "prompted", [score_answer(cases[0], a, [], True) for a in [cut, leaked, ended]]
    )
    assert scored.ended_rate == pytest.approx(1 / 3) and scored.leak_rate == pytest.approx(1 / 3)
    assert scored.cut_rate == pytest.approx(1 / 3)
