"""`tunedesk dataset build --teacher URL`: a larger model answers the prompts without a good
answer, and its answers become SFT examples (train split only, scrubbed, recorded).

The teacher that finishes its answers is a local HTTP server speaking OpenAI's chat API
(pytest-httpserver): a real large model cannot run here, and the tiny random model never ends
its turn. That tiny model behind `tunedesk engine serve` is the real teacher of the second test,
which checks that cut-off answers are not used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from service.config import SAMPLE_KNOWLEDGE_DIR
from tests.conftest import SERVED, free_port
from training.cli import main

SAMPLE = SAMPLE_KNOWLEDGE_DIR / "transcripts" / "rated.jsonl"
BUILD = ["dataset", "build", "--transcripts", str(SAMPLE), "--docs"]
BUILD += [str(SAMPLE_KNOWLEDGE_DIR / "docs")]
# the sample's answers with no good answer to learn from: 8 rated bad and never corrected,
# 1 whose customers' ratings disagree
UNANSWERED = 9
ANSWER = "Hold the reset pinhole for 10 seconds [1]. Write to jane.doe@example.com if it fails."


class Teacher:
    """An OpenAI-compatible endpoint that records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    def chat(self, request: Request) -> Response:
        body = json.loads(request.data)
        self.asked.append(body)
        reply = {
            "id": f"chatcmpl-{len(self.asked)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020},
        }
        return Response(json.dumps(reply), content_type="application/json")


def rows(version: Path, split: str) -> list[dict[str, Any]]:
    lines = (version / "sft" / f"{split}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_teacher_answers_become_scrubbed_train_examples(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    teacher = Teacher()
    httpserver.expect_request("/v1/models").respond_with_json(
        {"object": "list", "data": [{"id": "big-teacher", "object": "model", "created": 0}]}
    )
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(
        teacher.chat
    )
    plain = CliRunner().invoke(main, [*BUILD, "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    args = [*BUILD, "--out", str(tmp_path / "ds"), "--teacher", httpserver.url_for("/v1")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"teacher big-teacher at {httpserver.url_for('/v1')}: {UNANSWERED} prompts" in (
        result.output
    )

    version = tmp_path / "ds" / "v1"
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["teacher"]["counts"] == {"answered": UNANSWERED, "asked": UNANSWERED}
    assert manifest["teacher"]["model"] == "big-teacher"
    # the teacher was asked the exact prompts the small model saw: rules and sources first
    assert len(teacher.asked) == UNANSWERED
    for body in teacher.asked:
        assert body["model"] == "big-teacher" and body["temperature"] == 0
        assert body["messages"][0]["role"] == "system"
        assert body["messages"][0]["content"].startswith("You are")
        assert body["messages"][-1]["role"] == "user"

    taught = [r for r in rows(version, "train") if r["origin"] == "teacher"]
    held_out = manifest["counts"]["removed"]["teacher_in_eval"]
    assert len(taught) + held_out == UNANSWERED and taught
    assert all(r["origin"] != "teacher" for r in rows(version, "eval"))  # human references only
    assert {r["completion"][0]["content"] for r in taught} == {
        "Hold the reset pinhole for 10 seconds [1]. Write to [EMAIL] if it fails."
    }
    # everything else is what the build without a teacher made
    before = rows(tmp_path / "plain" / "v1", "train")
    assert len(rows(version, "train")) == len(before) + len(taught)


def test_cut_off_teacher_answers_are_not_used_and_an_unreachable_teacher_fails(
    engine_server: str, tmp_path: Path
) -> None:
    # the tiny random model never ends its turn: every answer stops at the token limit
    args = [*BUILD, "--out", str(tmp_path / "ds"), "--teacher", engine_server]
    result = CliRunner().invoke(main, [*args, "--teacher-max-tokens", "16"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "ds" / "v1" / "manifest.json").read_text())
    assert manifest["teacher"]["model"] == SERVED  # the first model the endpoint lists
    assert manifest["teacher"]["counts"] == {"asked": UNANSWERED, "cut_off": UNANSWERED}
    assert all(r["origin"] != "teacher" for r in rows(tmp_path / "ds" / "v1", "train"))

    down = f"http://127.0.0.1:{free_port()}/v1"
    out = tmp_path / "down"
    result = CliRunner().invoke(main, [*BUILD, "--out", str(out), "--teacher", down])
    assert result.exit_code == 1
    assert "Dataset build failed" in result.output and down in result.output
    assert not (out / "v1").exists()
