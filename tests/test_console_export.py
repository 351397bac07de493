"""Rated transcripts out of the console (`tunedesk dataset export`, the admin API) and into
`tunedesk dataset build`: an agent's correction becomes the SFT answer that retrains the model."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.config import SAMPLE_KNOWLEDGE_DIR, Settings
from tests.test_console import csrf_of, make_agent, sign_in
from training.cli import main
from training.transcripts import read_transcripts

E5 = "my router shows error E5, what do I do?"
CORRECTED = "Unplug the router for 30 seconds, then check the blue WAN cable [1]."


def test_a_console_correction_is_exported_and_built_into_the_dataset(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    answer = client.post("/v1/chat", json={"message": E5}).json()
    other = client.post("/v1/chat", json={"message": "is my thermostat t2 on wifi?"}).json()
    del client.headers["Authorization"]
    make_agent(client, "ana@example.com", "admin")
    sign_in(client, "ana@example.com")
    for message, body in [
        (answer["message_id"], {"label": "bad", "score": 2, "corrected_answer": CORRECTED}),
        (other["message_id"], {"label": "good", "tags": ["clear"]}),
    ]:
        r = client.post(
            f"/console/api/answers/{message}/ratings",
            json=body,
            headers={"X-CSRF-Token": csrf_of(client)},
        )
        assert r.status_code == 201, r.text
    env = {"TUNEDESK_DATABASE_URL": settings.db_url, "TUNEDESK_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    out = tmp_path / "rated.jsonl"
    args = ["dataset", "export", "--out", str(out), "--product", "halcyon-router-x1000"]
    result = runner.invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    assert "1 conversations" in result.output
    (transcript,) = read_transcripts(out)  # what dataset build reads, validated
    rated = transcript.messages[-1]
    assert rated.id == answer["message_id"] and rated.ratings[0].corrected_answer == CORRECTED
    line = json.loads(out.read_text())
    assert line["messages"][-1]["ratings"][0]["by"] == "ana@example.com"
    assert line["messages"][-1]["model_version"] is None and line["messages"][-1]["prompt"]
    api = client.get("/console/api/export?rating=rated").text.splitlines()
    assert len(api) == 2  # both rated conversations, through the console's own export
    build = [
        *["dataset", "build", "--transcripts", str(out)],
        *["--docs", str(SAMPLE_KNOWLEDGE_DIR / "docs"), "--out", str(tmp_path / "ds")],
        *["--eval-fraction", "0"],
    ]
    result = runner.invoke(main, build, env=env)
    assert result.exit_code == 0, result.output
    sft = [json.loads(x) for x in (tmp_path / "ds/v1/sft/train.jsonl").read_text().splitlines()]
    assert [row["completion"][0]["content"] for row in sft] == [CORRECTED]
    assert sft[0]["origin"] == "corrected" and sft[0]["provenance"] == "recorded"
    bad = runner.invoke(main, ["dataset", "export", "--out", str(out), "--rating", "x"], env=env)
    assert bad.exit_code != 0
