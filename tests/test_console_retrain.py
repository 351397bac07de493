"""Retraining from the console: an admin builds a dataset from the console's ratings as a
background job (the real `tunedesk dataset build`), trains one step on the tiny model, evaluates
it, publishes it through the gate (the real `tunedesk publish`), and canaries, activates and
rolls back versions; agents may not, and a version that skipped the gate cannot answer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from tests.test_console import console_of, csrf_of, make_agent, sign_in
from tests.test_console_metrics import settings  # noqa: F401  # adapters folder with alpha

E5 = "my router shows error E5, what do I do?"


def finished(client: TestClient, job: dict[str, Any], within_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while job["status"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(1)
        job = client.get(f"/console/api/jobs/{job['id']}").json()
    return job


@pytest.mark.slow
def test_an_admin_runs_the_loop_from_the_console(
    client: TestClient,
    settings: Settings,  # noqa: F811  # the fixture imported above
) -> None:
    answer = client.post("/v1/chat", json={"message": E5}).json()
    del client.headers["Authorization"]
    make_agent(client, "boss@example.com", "admin")
    make_agent(client, "ana@example.com")
    sign_in(client, "ana@example.com")
    token = {"X-CSRF-Token": csrf_of(client)}
    assert (
        client.post("/console/api/jobs", json={"kind": "dataset"}, headers=token).status_code == 403
    )
    sign_in(client, "boss@example.com")
    token = {"X-CSRF-Token": csrf_of(client)}
    fix = {"label": "bad", "corrected_answer": "Restart the modem, then the router [1]."}
    client.post(f"/console/api/answers/{answer['message_id']}/ratings", json=fix, headers=token)
    try:
        started = client.post("/console/api/jobs", json={"kind": "dataset"}, headers=token)
        assert started.status_code == 202, started.text
        built = finished(client, started.json())
        assert built["status"] == "succeeded", built["log"]
        assert any("v1: SFT" in line for line in built["log"])
        dataset = str(settings.data_dir / "datasets" / "v1")
        assert dataset in client.get("/console/retrain").text
        body = {"kind": "train", "dataset": dataset, "max_steps": 1}
        trained = finished(
            client, client.post("/console/api/jobs", json=body, headers=token).json()
        )
        assert trained["status"] == "succeeded", trained["log"]
        assert Path(trained["output"], "adapter_config.json").is_file()
        assert any("step 1/1" in line for line in trained["log"])  # the trainer's progress lines

        def act(action: dict[str, Any]) -> Any:
            return client.post("/console/api/versions", json=action, headers=token)

        assert act({"action": "register", "name": "v1", "adapter": "alpha"}).status_code == 200
        gated: list[dict[str, Any]] = [
            {"action": "canary", "name": "v1", "share": 0.5},
            {"action": "activate", "name": "v1"},
        ]
        for action in gated:
            refused = act(action)
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"]["code"] == "publish_gate_not_passed"
            assert "publish it (step 4)" in refused.json()["error"]["message"]

        def job(body: dict[str, Any]) -> dict[str, Any]:
            started = client.post("/console/api/jobs", json=body, headers=token)
            assert started.status_code == 202, started.text
            return finished(client, started.json())

        publish = {"kind": "publish", "adapter": trained["output"], "name": "v2"}
        early = client.post("/console/api/jobs", json=publish, headers=token)
        assert early.status_code == 422 and "Evaluate" in early.json()["error"]["message"]
        evaluated = job({"kind": "eval", "adapter": trained["output"], "limit": 2})
        assert evaluated["status"] == "succeeded", evaluated["log"]
        assert evaluated["report"] and "tuned+prompted" in evaluated["report"]
        # the base model answers now: the gate reads the same report's prompted variant
        published = job({**publish, "margin": 1.0, "ttft_margin": 1000})
        assert published["status"] == "succeeded", published["log"]
        assert "--active-eval" in published["command"]
        assert any("registered v2" in line for line in published["log"]), published["log"]
        taken = client.post("/console/api/jobs", json=publish, headers=token)
        assert taken.status_code == 422 and "exists" in taken.json()["error"]["message"]
    finally:
        console_of(client).jobs.stop_all()
    steps: list[dict[str, Any]] = [
        {"action": "canary", "name": "v2", "share": 0.5},
        {"action": "activate", "name": "v2"},
        {"action": "rollback", "name": "v2"},
    ]
    for action in steps:
        r = act(action)
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "retired"
    assert settings.engine.adapters_dir is not None
    assert (settings.engine.adapters_dir / "v2" / "adapter_config.json").is_file()
    page = client.get("/console/retrain").text
    assert "tunedesk train sft" in page and "retired" in page
    assert "passed on 2 questions" in page and "not gated" in page
    missing = client.post("/console/api/jobs", json={"kind": "eval"}, headers=token)
    assert missing.status_code == 422 and "adapter" in missing.json()["error"]["message"]
