"""`tunedesk dataset synth`: grounded, cited examples from documents alone, planned as the
service plans a customer's question, and written as a versioned dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from knowledge.index import SearchHit
from service.config import Settings
from training.chunks import DocsChunks
from training.cli import main
from training.synth.build import SynthOptions, supporting_source, synthesize
from training.synth.questions import Draft, drafts_for

ROUTER = """---
product: halcyon-router-x1000
title: Error codes
---
# Error codes

## Error code table

| Code | Meaning | What to do |
|---|---|---|
| E3 | WAN cable not detected: no link on the blue WAN port | Check the cable. |
| E6 | DNS servers not responding | In **Settings > Network > WAN > DNS**, choose **Automatic**. |

## Restart the router

1. Unplug the router and wait 30 seconds.
2. Plug it back in and wait until the LED is solid white.
3. Open the Halcyon Home app and check the status.
"""
THERMOSTAT = """---
product: halcyon-thermostat-t2
title: Specifications
---
# Specifications

## Power

| Item | Specification |
|---|---|
| Supply | 24 V AC (18–30 V AC) from the C wire or the Halcyon C-Wire Adapter |
| Backup battery | Built-in rechargeable lithium battery, up to 2 hours of operation |

## Error codes

| Code | Meaning | What to do |
|---|---|---|
| E20 | No power from the C wire | Connect a C wire or the C-Wire Adapter. |
"""


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth-docs")
    for product, text in [("halcyon-router-x1000", ROUTER), ("halcyon-thermostat-t2", THERMOSTAT)]:
        (root / product).mkdir()
        (root / product / "doc.md").write_text(text, encoding="utf-8")
    return root


def test_drafts_follow_the_chunks_structure(docs: Path) -> None:
    drafts = [d for hit in DocsChunks(docs).all() for d in drafts_for(hit, "Halcyon X1000 Router")]
    by_kind = {d.kind: d for d in drafts}
    assert {"error_code", "steps", "specification"} <= set(by_kind)
    e3 = next(d for d in drafts if d.code == "E3")
    assert "E3" in e3.question and "WAN cable not detected" in e3.answer
    assert "{cite}" in e3.answer
    steps = by_kind["steps"]
    assert steps.question == "How do I restart the router on my X1000 Router?"
    assert steps.answer.startswith("1. Unplug the router and wait 30 seconds {cite}.")


def test_synthesized_answers_cite_the_source_the_service_prompt_numbers(
    docs: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, model={"path": tiny_model_dir})  # type: ignore[arg-type]
    made = synthesize(docs, settings, SynthOptions(unanswerable_share=0.3), report=lambda _: None)
    answered = [t for t in made.transcripts if t.messages[1].citations]
    assert len(answered) >= 4, made.counts
    chunks = DocsChunks(docs)
    for transcript in answered:
        answer = transcript.messages[1]
        assert transcript.channel == "synth" and answer.ratings[0].label == "good"
        (number,) = answer.citations
        assert f"[{number}]" in answer.content
        cited = next(s for s in answer.sources if s.number == number)
        source_text = chunks.by_ids([cited.chunk_id])[cited.chunk_id].text
        prompt = "\n".join(m.content for m in answer.prompt or [])
        assert f"[{number}]" in prompt and source_text.splitlines()[0][:40] in prompt
        fact = re.sub(r"\[\d+\]", "", answer.content).split(":")[-1].strip(" .")[:25]
        assert fact.replace("**", "")[:10].lower() in source_text.replace("**", "").lower()
    unanswerable = [t for t in made.transcripts if not t.messages[1].citations]
    assert unanswerable, made.counts  # E20 asked about the router, whose sources lack it
    for transcript in unanswerable:
        question, answer = transcript.messages
        code = re.search(r"E\d+", question.content)
        assert code and "don't list" in answer.content
        sources = "\n".join(m.content for m in answer.prompt or [] if m.role == "system")
        assert not re.search(rf"\b{code.group()}\b", sources.split("Sources:")[-1])


def test_the_command_writes_a_versioned_dataset_and_refuses_a_missing_folder(
    docs: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TUNEDESK_MODEL__PATH", str(tiny_model_dir))
    missing = CliRunner().invoke(main, ["dataset", "synth", "--docs", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    saved = tmp_path / "synth.jsonl"
    args = ["dataset", "synth", "--docs", str(docs), "--out", str(tmp_path / "ds")]
    result = CliRunner().invoke(main, [*args, "--save-transcripts", str(saved)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "ds" / "v1" / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "synth"
    rows = (tmp_path / "ds" / "v1" / "sft" / "train.jsonl").read_text().splitlines()
    assert rows and len(saved.read_text().splitlines()) >= len(rows)
    row = json.loads(rows[0])
    assert row["prompt"][0]["role"] == "system" and row["completion"][0]["role"] == "assistant"


def hit(chunk_id: str, text: str) -> SearchHit:
    return SearchHit(chunk_id, 1.0, text, "Error codes", "error-codes.md", ["Errors"], "router")


def test_another_source_that_states_the_answer_is_cited_in_place_of_the_drafted_one() -> None:
    draft = Draft(
        question="My router shows E5. What does that mean?",
        answer="E5 means no internet from the modem: restart the modem, then the router {cite}.",
        chunk_id="table-row",
        product="router",
        kind="error_code",
        code="E5",
    )
    fixing = hit(
        "fixing-e5",
        "Fixing E5. E5 means no internet from the modem. To fix it, "
        "restart the modem first, wait two minutes, then restart the router.",
    )
    other_code = hit(
        "fixing-e3", "E3 means no internet from the modem: restart the modem, then the router."
    )  # the same words, but another code
    unrelated = hit("leds", "A solid red light means the router has no internet.")
    assert supporting_source(draft, [unrelated, other_code, fixing]) == 3
    assert supporting_source(draft, [unrelated, other_code, None]) is None
