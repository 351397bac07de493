"""A public grounded dialogue set mixed into a dataset: turns about its train half of documents
become cited examples with the set's attribution, and an evaluation that excludes the dataset
asks only about documents it never trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from training.cli import main
from training.evaluation.cases import load_cases
from training.public_sets import cite, is_held_out, tidy_span
from training.runs import public_sets_record

PAGES = {
    "renew-license": (
        "Renew your driver license",
        "You can renew your driver license online up to one year before it expires. "
        "You need your current license and a credit card. The renewal fee is 64 dollars. "
        "If your license expired more than two years ago, you must apply in person at a DMV "
        "office.",
    ),
    "replace-card": (
        "Replace a Social Security card",
        "You can replace your Social Security card for free. Most adults can request a "
        "replacement online with a my Social Security account. You must prove your identity with "
        "a driver license or a passport. You are limited to three replacement cards in a year.",
    ),
    "student-aid": (
        "Apply for federal student aid",
        "To apply for federal student aid, fill out the FAFSA form each school year. "
        "The form opens on October 1. You need your Social Security number and your tax "
        "returns. Your school uses the FAFSA to work out how much aid you can get.",
    ),
    "veterans-pension": (
        "Veterans pension eligibility",
        "A veterans pension is a monthly payment for wartime veterans with limited income. "
        "You must be at least 65 years old or have a permanent disability. Your yearly family "
        "income must be below the limit that Congress sets.",
    ),
    "vehicle-registration": (
        "Register a vehicle",
        "To register a vehicle, bring proof of ownership, proof of insurance and your license "
        "to a DMV office. Registration lasts two years. You can renew a registration online "
        "if your address has not changed.",
    ),
    "disability-benefits": (
        "Apply for disability benefits",
        "You can apply for disability benefits online or by phone. You need medical records "
        "and the names of your doctors. A decision usually takes three to five months.",
    ),
}
TURNS = {
    "renew-license": [
        (
            "How do I renew my driver license?",
            "You can renew your driver license online up to one year before it expires , ",
        ),
        ("How much does it cost?", "The renewal fee is 64 dollars. "),
    ],
    "replace-card": [
        ("I lost my social security card", "You can replace your Social Security card for free. "),
        (
            "What do I need to prove who I am?",
            "You must prove your identity with a driver license or a passport. ",
        ),
    ],
    "student-aid": [
        ("How do I apply for student aid?", "fill out the FAFSA form each school year. "),
        ("When does the form open?", "The form opens on October 1. "),
    ],
    "veterans-pension": [
        (
            "Who can get a veterans pension?",
            "A veterans pension is a monthly payment for wartime veterans with limited income. ",
        ),
        (
            "Is there an age requirement?",
            "You must be at least 65 years old or have a permanent disability. ",
        ),
    ],
    "vehicle-registration": [
        (
            "What do I need to register my car?",
            "bring proof of ownership, proof of insurance and your license to a DMV office. ",
        ),
        ("How long does registration last?", "Registration lasts two years. "),
    ],
    "disability-benefits": [
        (
            "How do I apply for disability benefits?",
            "You can apply for disability benefits online or by phone. ",
        ),
        ("How long does a decision take?", "A decision usually takes three to five months. "),
    ],
}
ATTRIBUTION = "test pages written for this suite, CC0"


@pytest.fixture(scope="module")
def public_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("public") / "govpages"
    root.mkdir()
    docs = [{"id": i, "title": title, "text": text} for i, (title, text) in PAGES.items()]
    questions = []
    for doc, turns in TURNS.items():
        history: list[dict[str, str]] = []
        for n, (question, span) in enumerate(turns):
            questions.append(
                {
                    "id": f"{doc}_{n}",
                    "question": question,
                    "answer": span,
                    "doc_ids": [doc],
                    "history": list(history),
                }
            )
            history += [
                {"role": "user", "utterance": question},
                {"role": "agent", "utterance": span.strip(" ,")},
            ]
    (root / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    return root


def test_spans_become_answers_that_cite_the_source() -> None:
    assert tidy_span("fill out the FAFSA form each school year , ") == (
        "Fill out the FAFSA form each school year."
    )
    assert tidy_span("a service - connected disability") == "A service-connected disability."
    assert cite("The fee is 64 dollars.", 2) == "The fee is 64 dollars [2]."


def test_mixed_in_turns_train_on_one_half_of_the_documents_and_the_other_half_is_evaluated(
    public_set: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TUNEDESK_MODEL__PATH", str(tiny_model_dir))
    held = {d for d in PAGES if is_held_out(d, 0.5, 0)}
    assert held and held != set(PAGES)  # the split of these six pages has both halves
    out, empty = tmp_path / "ds", tmp_path / "none.jsonl"
    empty.write_text("")  # no rated transcripts yet: the public set alone
    args = ["dataset", "build", "--transcripts", str(empty), "--out", str(out)]
    unattributed = CliRunner().invoke(main, [*args, "--mix-set", str(public_set)])
    assert unattributed.exit_code == 2 and "--mix-attribution" in unattributed.output
    missing = CliRunner().invoke(
        main, [*args, "--mix-set", str(tmp_path / "nowhere"), "--mix-attribution", ATTRIBUTION]
    )
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert not out.exists()
    result = CliRunner().invoke(
        main,
        [
            *args,
            "--eval-fraction",
            "0",
            "--mix-set",
            str(public_set),
            "--mix-attribution",
            ATTRIBUTION,
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "v1" / "manifest.json").read_text())
    (mixed,) = manifest["source"]["public_sets"]
    assert mixed["attribution"] == ATTRIBUTION and mixed["name"] == "govpages"
    assert set(mixed["held_out_docs"]) == held
    assert set(mixed["train_docs"]) == set(PAGES) - held
    (recorded,) = public_sets_record(manifest)  # what an adapter trained on it will carry
    assert recorded["attribution"] == ATTRIBUTION and recorded["held_out_docs"] == len(held)
    rows = [
        json.loads(line) for line in (out / "v1" / "sft" / "train.jsonl").read_text().splitlines()
    ]
    assert len(rows) == mixed["examples"] >= 3, mixed["turns"]
    train_questions = {q for d in mixed["train_docs"] for q, _ in TURNS[d]}
    for row in rows:
        asked = [m["content"] for m in row["prompt"] if m["role"] == "user"]
        assert asked[-1] in train_questions  # never a turn about a held-out page
        answer = row["completion"][0]["content"]
        number = int(answer.rsplit("[", 1)[1].split("]")[0])
        system = [m["content"] for m in row["prompt"] if m["role"] == "system"][-1]
        assert system.startswith("Sources:")
        source = system.split(f"[{number}] ", 1)[1]
        span = answer.rsplit(" [", 1)[0].rstrip(".")
        assert span.lower()[:20] in source.lower()  # the cited source holds the span
    follow_ups = [r for r in rows if any(m["role"] == "assistant" for m in r["prompt"])]
    assert follow_ups  # second turns keep the dialogue before them

    cases = load_cases(public_set, exclude_seen=out / "v1")
    assert {c.gold_sources[0] for c in cases.cases} == held
    assert len(cases.left_out) == sum(len(TURNS[d]) for d in mixed["train_docs"])
