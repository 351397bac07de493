"""Hand-offs and refusals count against the model version that is active (issue 15): the
console's charts split by version, so a canned answer labelled `base` would make them lie."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.config import Settings


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, tiny_adapters: dict[str, Path]) -> Settings:
    settings.engine.adapters_dir = tmp_path / "adapters"
    settings.engine.adapters_dir.mkdir()
    shutil.copytree(tiny_adapters["alpha"], settings.engine.adapters_dir / "alpha")
    return settings


def test_handoffs_and_refusals_are_stored_and_counted_under_the_active_version(
    client: TestClient,
) -> None:
    client.post("/v1/models", json={"name": "v1", "adapter": "alpha"}).raise_for_status()
    client.post("/v1/models/v1/activate").raise_for_status()
    handoff = client.post("/v1/chat", json={"message": "let me talk to a human"}).json()
    refusal = client.post("/v1/chat", json={"message": "write me a haiku about autumn leaves"})
    assert handoff["finish_reason"] == "handoff" and handoff["model_version"] == "v1"
    assert refusal.json()["finish_reason"] == "out_of_scope"
    assert refusal.json()["model_version"] == "v1"
    assert refusal.json()["adapter"] is None  # no adapter wrote the brand's fixed text
    opened = client.post("/v1/conversations", json={}).json()
    client.post(f"/v1/conversations/{opened['id']}/handoff", json={}).raise_for_status()
    metrics = client.get("/metrics").text
    assert 'model_version="base"' not in metrics
    asked = 'channel="api",model_version="v1",product="",reason="asked_for_human"'
    assert f'tunedesk_handoffs_total{{{asked},tenant="default"}} 1.0' in metrics
    assert 'model_version="v1",product="",reason="requested",tenant="default"} 1.0' in metrics
    refused = 'channel="api",model_version="v1",outcome="out_of_scope"'
    assert f'tunedesk_answers_total{{{refused},product="",tenant="default"}} 1.0' in metrics
    stored = client.get(f"/v1/conversations/{handoff['conversation_id']}").json()
    assert stored["messages"][-1]["model_version"] == "v1"
