"""`tunedesk dataset build`: rated transcripts → scrubbed, split, versioned SFT and DPO data."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from knowledge.catalog import load_products, load_system_prompt, load_templates
from service.config import SAMPLE_KNOWLEDGE_DIR
from service.prompting.builder import PromptBuilder
from training.chunks import DocsChunks
from training.cli import main
from training.dataset import BuildOptions, BuildResult, build_dataset
from training.prompts import PromptRebuilder
from training.transcripts import Transcript, TranscriptError, read_transcripts

SAMPLE = SAMPLE_KNOWLEDGE_DIR / "transcripts" / "rated.jsonl"
PERSONAL = ["Whitfield", "example.com", "example.net", "555-01", "4111 1111", "Kestrel", "Raman"]


@pytest.fixture(scope="module")
def chunks() -> DocsChunks:
    return DocsChunks(SAMPLE_KNOWLEDGE_DIR / "docs")


@pytest.fixture(scope="module")
def rebuilder(chunks: DocsChunks) -> PromptRebuilder:
    system = load_system_prompt(SAMPLE_KNOWLEDGE_DIR)
    templates = load_templates(SAMPLE_KNOWLEDGE_DIR, load_products(SAMPLE_KNOWLEDGE_DIR))
    return PromptRebuilder(PromptBuilder(system), templates, chunks)


@pytest.fixture(scope="module")
def sample_build(
    rebuilder: PromptRebuilder, tmp_path_factory: pytest.TempPathFactory
) -> BuildResult:
    out = tmp_path_factory.mktemp("datasets")
    return build_dataset(read_transcripts(SAMPLE), rebuilder, out, BuildOptions(), {"kind": "test"})


def rows(result: BuildResult, part: str, split: str) -> list[dict[str, Any]]:
    path = result.directory / part / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_sample_transcripts_cover_the_products_with_corrections() -> None:
    transcripts = list(read_transcripts(SAMPLE))
    answers = [m for t in transcripts for m in t.messages if m.role == "assistant"]
    corrected = [a for a in answers if any(r.corrected_answer for r in a.ratings)]
    assert len(transcripts) >= 150 and len(corrected) >= 30
    assert {t.product for t in transcripts} >= {
        "halcyon-router-x1000",
        "halcyon-thermostat-t2",
        "halcyon-camera-c3",
    }
    assert all(a.ratings for a in answers)
    assert max(sum(m.role == "user" for m in t.messages) for t in transcripts) == 3


def test_prompts_are_rebuilt_with_the_cited_chunks_and_template(
    sample_build: BuildResult, chunks: DocsChunks
) -> None:
    counts = sample_build.manifest["counts"]
    # every prompt is recovered; after a chunker change, by heading ("approximate")
    assert sum(counts["prompts"].values()) == sample_build.manifest["source"]["rated_answers"]
    assert not [k for k in counts["skipped_answers"] if k.startswith("prompt-unavailable")]
    e5 = next(
        r
        for r in rows(sample_build, "sft", "train") + rows(sample_build, "sft", "eval")
        if "E5" in r["prompt"][-1]["content"] and r["origin"] == "good"
    )
    system = [m["content"] for m in e5["prompt"] if m["role"] == "system"]
    assert system[0].startswith("You are the customer-support assistant of Halcyon Home")
    assert any('Troubleshooting guide "Router error E5' in s for s in system)
    assert system[-1].startswith("Sources:\n[1] ") and "[4] " in system[-1]
    assert e5["prompt"][-1]["role"] == "user" and e5["completion"][0]["role"] == "assistant"


def test_good_and_corrected_answers_make_sft_and_corrections_make_pairs(
    sample_build: BuildResult,
) -> None:
    counts = sample_build.manifest["counts"]
    assert counts["sft_origin"]["corrected"] >= 30 and counts["sft_origin"]["good"] >= 100
    assert counts["dpo_origin"]["corrected"] >= 30 and counts["dpo_origin"]["rated"] >= 1
    pair = rows(sample_build, "dpo", "train")[0]
    assert pair["chosen"][0]["content"] != pair["rejected"][0]["content"]
    assert counts["skipped_answers"]["verdict:None"] == 1  # a lone score of 3 decides nothing


def test_no_conversation_is_on_both_sides_and_personal_data_is_gone(
    sample_build: BuildResult,
) -> None:
    train = {r["conversation_id"] for r in rows(sample_build, "sft", "train")}
    held_out = {r["conversation_id"] for r in rows(sample_build, "sft", "eval")}
    assert train and held_out and not train & held_out
    for pair in rows(sample_build, "dpo", "train"):
        assert not set(pair["conversation_ids"]) & held_out
    written = "".join(p.read_text() for p in sample_build.directory.rglob("*.jsonl"))
    for piece in PERSONAL:
        assert piece not in written
    assert sample_build.manifest["counts"]["pii_replaced"]["CARD"] >= 3


def test_manifest_records_hashes_ratings_and_filters(sample_build: BuildResult) -> None:
    import hashlib

    manifest = sample_build.manifest
    for name, info in manifest["files"].items():
        data = (sample_build.directory / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"]
        assert info["rows"] == data.count(b"\n")
    assert len(manifest["rating_ids"]) > 150
    assert manifest["filters"]["eval_fraction"] == 0.1
    assert (sample_build.directory / "manifest.json").is_file()


def test_an_unchanged_build_writes_no_new_version(
    sample_build: BuildResult, rebuilder: PromptRebuilder
) -> None:
    out = sample_build.directory.parent
    again = build_dataset(read_transcripts(SAMPLE), rebuilder, out, BuildOptions(), {})
    assert not again.created and again.directory == sample_build.directory
    other = build_dataset(read_transcripts(SAMPLE), rebuilder, out, BuildOptions(seed=1), {})
    assert other.created and other.directory.name == "v2"


def transcript(cid: str, question: str, answer: str, **rating: Any) -> Transcript:
    return Transcript.model_validate(
        {
            "conversation_id": cid,
            "messages": [
                {"id": f"{cid}-q", "role": "user", "content": question},
                {
                    "id": f"{cid}-a",
                    "role": "assistant",
                    "content": answer,
                    "ratings": [{"id": f"{cid}-r", **rating}],
                },
            ],
        }
    )


def test_same_prompt_rated_differently_makes_one_pair_in_one_split(
    rebuilder: PromptRebuilder, tmp_path: Path
) -> None:
    items = [
        transcript(
            "a", "router E5?", "Restart the modem first [1].", rater="customer", label="good"
        ),
        transcript("b", "router E5?", "Buy a new router.", rater="customer", label="bad"),
        *[
            transcript(f"x{i}", f"question {i}", f"answer {i}", rater="agent", label="good")
            for i in range(8)
        ],
    ]
    result = build_dataset(items, rebuilder, tmp_path, BuildOptions(eval_fraction=0.5), {})
    pairs = rows(result, "dpo", "train") + rows(result, "dpo", "eval")
    assert [p["origin"] for p in pairs] == ["rated"]
    assert pairs[0]["chosen"][0]["content"] == "Restart the modem first [1]."
    sides = {
        cid: split
        for split in ("train", "eval")
        for r in rows(result, "sft", split)
        for cid in [r["conversation_id"]]
    }
    assert "a" in sides and "b" not in sides  # b gave no SFT example: its answer was bad
    pair_split = "train" if rows(result, "dpo", "train") else "eval"
    assert sides["a"] == pair_split


def test_duplicates_are_removed_after_scrubbing(rebuilder: PromptRebuilder, tmp_path: Path) -> None:
    items = [
        transcript(
            "a",
            "Hi, my name is Dana Whitfield. E3?",
            "Use the blue WAN port [1].",
            rater="agent",
            label="good",
        ),
        transcript(
            "b",
            "Hi, my name is Tom Baker. E3?",
            "Use the blue WAN port [1].",
            rater="agent",
            label="good",
        ),
    ]
    result = build_dataset(items, rebuilder, tmp_path, BuildOptions(eval_fraction=0.0), {})
    assert len(rows(result, "sft", "train")) == 1
    assert result.manifest["counts"]["removed"]["duplicate_sft"] == 1


def stored_conversations(tmp_path: Path) -> Iterator[str]:
    """A SQLite store with one rated, corrected answer, written by the service's own store."""
    from service.db import make_engine, migrate, session_factory
    from service.store.repository import AnswerRecord, ConversationStore, RatingInput

    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    migrate(engine)
    store = ConversationStore(session_factory(engine))
    conversation = store.start_conversation("default", "halcyon-router-x1000")
    store.add_user_message(conversation.id, "router says E3", "halcyon-router-x1000", [])
    prompt = [
        {"role": "system", "content": "You are the support assistant. Sources: [1] E3 ..."},
        {"role": "user", "content": "router says E3"},
    ]
    record = AnswerRecord(content="Reset the router.", prompt=prompt)
    answer = store.add_answer(conversation.id, record)
    store.rate("default", answer.id, RatingInput(rater="customer", label="bad", score=1))
    fix = "Move the modem cable to the blue WAN port."
    store.rate("default", answer.id, RatingInput(rater="agent", label="bad", corrected_answer=fix))
    store.add_user_message(conversation.id, "unrated follow-up", None, [])
    engine.dispose()
    yield url


def test_the_database_is_read_like_an_exported_file(
    rebuilder: PromptRebuilder, tmp_path: Path
) -> None:
    from training.store_export import transcripts_from_database

    url = next(stored_conversations(tmp_path))
    transcripts = list(transcripts_from_database(url))
    assert len(transcripts) == 1 and len(transcripts[0].messages) == 3
    result = build_dataset(transcripts, rebuilder, tmp_path / "out", BuildOptions(0.0), {})
    (sft,) = rows(result, "sft", "train")
    assert sft["origin"] == "corrected" and "blue WAN port" in sft["completion"][0]["content"]
    assert sft["provenance"] == "recorded" and sft["prompt"][0]["content"].startswith("You are")
    (pair,) = rows(result, "dpo", "train")
    assert pair["rejected"][0]["content"] == "Reset the router."


def test_the_cli_builds_from_a_file_and_refuses_a_bad_one(tmp_path: Path) -> None:
    runner = CliRunner()
    args = [
        "dataset",
        "build",
        "--transcripts",
        str(SAMPLE),
        "--docs",
        str(SAMPLE_KNOWLEDGE_DIR / "docs"),
    ]
    result = runner.invoke(main, [*args, "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert "v1: SFT" in result.output and (tmp_path / "ds" / "v1" / "manifest.json").is_file()
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"conversation_id": "x", "messages": []}\n')
    result = runner.invoke(main, [*args[:3], str(broken), *args[4:], "--out", str(tmp_path)])
    assert result.exit_code == 1 and "broken.jsonl:1: messages" in result.output
    with pytest.raises(TranscriptError, match="not JSON"):
        broken.write_text("{oops\n")
        list(read_transcripts(broken))


def test_real_messy_conversations_import_and_build(
    rebuilder: PromptRebuilder, tmp_path: Path
) -> None:
    from tests.test_pii import TWEETSUMM
    from training.importers import tweetsumm_transcripts

    if not TWEETSUMM.is_file():
        pytest.skip(f"TweetSumm not found at {TWEETSUMM} (../shared/data is third-party data)")
    transcripts = list(tweetsumm_transcripts(TWEETSUMM, limit=150, rate_answers="good"))
    for t in transcripts:  # customers' tweets in a row became one message: roles alternate
        roles = [m.role for m in t.messages]
        assert all(a != b for a, b in itertools.pairwise(roles))
    result = build_dataset(transcripts, rebuilder, tmp_path, BuildOptions(), {"kind": "test"})
    train = rows(result, "sft", "train")
    held_out = {r["conversation_id"] for r in rows(result, "sft", "eval")}
    assert len(train) > 300 and held_out and not held_out & {r["conversation_id"] for r in train}
    written = (result.directory / "sft" / "train.jsonl").read_text(encoding="utf-8")
    assert "@AppleSupport" not in written and "[HANDLE]" in written


def test_prompts_are_rebuilt_from_the_live_knowledge_base_in_its_store(settings: Any) -> None:
    """Without --docs, chunks are read back from the store the service searches (Qdrant Edge
    by default), by id and by source + heading."""
    from training.inputs import chunk_lookup

    page = "docs/halcyon-router-x1000/error-codes.md"
    with chunk_lookup(None, settings) as (chunks, described):
        assert described.startswith(f"qdrant:{settings.knowledge.store}:")
        first = chunks.by_location(page, "Error codes")
        assert first is not None and first.source == page and "detects a problem" in first.text
        assert chunks.by_ids([first.chunk_id])[first.chunk_id].text == first.text
        assert chunks.by_ids(["no-such-chunk"]) == {}
