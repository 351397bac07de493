"""Model versions through the real app: register (hot-load), canary, activate, roll back, audit;
the publish gate; `tunedesk publish` against the running app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.store.models import DEFAULT_TENANT_ID, ModelVersion
from service.versions.chooser import RegistryVersions, in_canary
from service.versions.client import ModelsClient
from tests.conftest import new_key
from training.publish import PublishError, PublishOptions, publish
from training.publish_gate import compare

E5 = "my router shows error E5, what do I do?"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The shared settings with an (empty) adapters folder the engine loads from."""
    settings.engine.adapters_dir = tmp_path / "adapters"
    settings.engine.adapters_dir.mkdir()
    return settings


def add_adapter(settings: Settings, source: Path, name: str) -> None:
    """Drop an adapter into the adapters folder while the service runs (as publish does)."""
    assert settings.engine.adapters_dir is not None
    shutil.copytree(source, settings.engine.adapters_dir / name)


def register(client: TestClient, name: str, adapter: str | None) -> dict[str, Any]:
    r = client.post("/v1/models", json={"name": name, "adapter": adapter})
    assert r.status_code == 201, r.text
    return dict(r.json())


def answered_by(client: TestClient) -> tuple[Any, Any, str, str]:
    """Ask E5 in a new conversation: the stored answer's model_version and adapter, the answer
    text and the conversation id."""
    answer = client.post("/v1/chat", json={"message": E5}).json()
    conversation = client.get(f"/v1/conversations/{answer['conversation_id']}").json()
    stored = next(m for m in conversation["messages"] if m["id"] == answer["message_id"])
    assert (answer["model_version"], answer["adapter"]) == (
        stored["model_version"],
        stored["adapter"],
    )  # the helpdesk learns which version answered without a second call
    return stored["model_version"], stored["adapter"], answer["answer"], answer["conversation_id"]


def engine_adapters(client: TestClient) -> list[str]:
    return sorted(client.app.state.components.engine.runtime.adapters)  # type: ignore[attr-defined]


def test_registered_then_activated_version_answers_the_next_question(
    client: TestClient, settings: Settings, tiny_adapters: dict[str, Path]
) -> None:
    assert answered_by(client)[:2] == (None, None)  # no versions: the configured default
    base_text = answered_by(client)[2]
    add_adapter(settings, tiny_adapters["alpha"], "alpha")
    assert "alpha" not in engine_adapters(client)
    version = register(client, "v1", "alpha")
    assert version["status"] == "candidate" and version["base_model"] == "tiny-gemma"
    assert "alpha" in engine_adapters(client)  # hot-loaded, no restart
    assert answered_by(client)[:2] == (None, None)  # a candidate answers nobody
    activated = client.post("/v1/models/v1/activate")
    assert activated.status_code == 200, activated.text
    assert activated.json()["status"] == "active" and activated.json()["activated_at"]
    version_name, adapter, text, _ = answered_by(client)
    assert (version_name, adapter) == ("v1", "alpha")
    assert text != base_text  # the adapter really generated it
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list" and listing["default_adapter"] is None
    assert [(v["id"], v["object"], v["status"]) for v in listing["data"]] == [
        ("v1", "model", "active")
    ]
    # an engine that lost the adapter (a restarted vLLM server, a replica that did not
    # serve the activation) loads it from the adapters folder on the next answer
    client.app.state.components.engine.runtime.unload_adapter("alpha")  # type: ignore[attr-defined]
    assert "alpha" not in engine_adapters(client)
    version_name, adapter, again, _ = answered_by(client)
    assert (version_name, adapter, again) == ("v1", "alpha", text)
    assert "alpha" in engine_adapters(client)


def test_canary_share_one_routes_every_conversation_and_zero_none(
    client: TestClient, settings: Settings, tiny_adapters: dict[str, Path]
) -> None:
    for name in ("alpha", "beta"):
        add_adapter(settings, tiny_adapters[name], name)
    register(client, "v1", "alpha")
    client.post("/v1/models/v1/activate").raise_for_status()
    register(client, "v2", "beta")
    r = client.post("/v1/models/v2/canary", json={"share": 1.0})
    assert r.status_code == 200 and r.json()["status"] == "canary", r.text
    assert {answered_by(client)[:2] for _ in range(3)} == {("v2", "beta")}
    client.post("/v1/models/v2/canary", json={"share": 0.0}).raise_for_status()
    assert {answered_by(client)[:2] for _ in range(3)} == {("v1", "alpha")}
    assert client.get("/v1/models/v2").json()["status"] == "candidate"
    bad = client.post("/v1/models/v2/canary", json={"share": 1.5})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
    active = client.post("/v1/models/v1/canary", json={"share": 0.5})
    assert active.status_code == 409  # the active version cannot also be its own canary


def test_canary_share_is_stable_per_conversation_and_proportional() -> None:
    ids = [f"conversation-{i}" for i in range(4000)]
    tenth = {c for c in ids if in_canary("v2", c, 0.1)}
    assert 0.08 < len(tenth) / len(ids) < 0.12
    half = {c for c in ids if in_canary("v2", c, 0.5)}
    assert tenth < half  # raising the share only adds conversations
    assert not any(in_canary("v2", c, 0.0) for c in ids)
    assert all(in_canary("v2", c, 1.0) for c in ids)


def test_half_canary_routes_by_a_hash_of_the_conversation_id(
    client: TestClient, settings: Settings, tiny_adapters: dict[str, Path]
) -> None:
    add_adapter(settings, tiny_adapters["beta"], "beta")
    register(client, "v2", "beta")
    client.post("/v1/models/v2/canary", json={"share": 0.5}).raise_for_status()
    for _ in range(4):
        version, adapter, _, conversation = answered_by(client)
        in_it = in_canary("v2", conversation, 0.5)
        assert (version, adapter) == (("v2", "beta") if in_it else (None, None))


def test_chooser_is_sticky_per_conversation_and_sees_changes() -> None:
    versions = [
        ModelVersion(name="v1", adapter="alpha", status="active", canary_share=0.0),
        ModelVersion(name="v2", adapter="beta", status="canary", canary_share=0.3),
    ]
    loads: list[str] = []

    def load(tenant_id: str) -> list[ModelVersion]:
        loads.append(tenant_id)
        return versions

    chooser = RegistryVersions(load, default_adapter="house", ttl_s=60)
    picks = {c: chooser.choose("t", c) for c in (f"c{i}" for i in range(200))}
    assert {chooser.choose("t", c) for c in picks} <= {("v1", "alpha"), ("v2", "beta")}
    assert all(chooser.choose("t", c) == pick for c, pick in picks.items())  # sticky
    assert loads == ["t"]  # cached
    versions.clear()
    assert chooser.choose("t", "c1") == picks["c1"]  # until invalidated (or ttl_s passes)
    chooser.invalidate("t")
    assert chooser.choose("t", "c1") == (None, "house")  # no versions: the configured adapter


def test_rollback_restores_the_previous_version_and_everything_is_recorded(
    client: TestClient, settings: Settings, tiny_adapters: dict[str, Path]
) -> None:
    for name in ("alpha", "beta"):
        add_adapter(settings, tiny_adapters[name], name)
    register(client, "v1", "alpha")
    register(client, "v2", "beta")
    client.post("/v1/models/v1/activate").raise_for_status()
    client.post("/v1/models/v2/activate").raise_for_status()
    assert client.get("/v1/models/v1").json()["status"] == "retired"
    assert engine_adapters(client) == ["beta"]  # the retired version's adapter is unloaded
    assert answered_by(client)[:2] == ("v2", "beta")

    r = client.post("/v1/models/v2/rollback")
    assert r.status_code == 200, r.text
    assert r.json()["rolled_back"]["status"] == "retired"
    assert r.json()["active"]["name"] == "v1"
    assert engine_adapters(client) == ["alpha"]  # loaded again, and v2's unloaded
    assert answered_by(client)[:2] == ("v1", "alpha")

    # rolling back again goes one more step back (to the default), never forward to v2
    r = client.post("/v1/models/v1/rollback")
    assert r.status_code == 200 and r.json()["active"] is None
    assert answered_by(client)[:2] == (None, None)
    assert client.post("/v1/models/v1/rollback").status_code == 409  # nothing active now

    key_ids = {k["id"] for k in client.get("/v1/keys").json() if k["name"] == "tests"}
    v2 = client.get("/v1/models/v2/events").json()
    assert [e["action"] for e in v2] == ["registered", "activated", "rolled_back"]
    assert len({e["actor"] for e in v2}) == 1 and v2[0]["actor"] in key_ids
    assert v2[1]["detail"] == {"from": "candidate", "previous": "v1"}
    assert v2[2]["detail"] == {"from": "active", "restored": "v1"}
    v1 = [e["action"] for e in client.get("/v1/models/v1/events").json()]
    assert v1 == ["registered", "activated", "retired", "reactivated", "rolled_back"]


def test_unknown_adapter_is_refused_by_name(client: TestClient) -> None:
    r = client.post("/v1/models", json={"name": "v9", "adapter": "no-such-adapter"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_adapter"
    assert "no-such-adapter" in r.json()["error"]["message"]
    assert client.get("/v1/models").json()["data"] == []  # nothing registered
    traversal = client.post("/v1/models", json={"name": "v9", "adapter": "../../etc"})
    assert traversal.status_code == 422
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/models", "/v1/models/{name}/rollback", "/v1/models/{name}/events"} <= set(paths)


def test_names_are_unique_and_base_model_versions_need_no_adapter(client: TestClient) -> None:
    register(client, "base", None)
    again = client.post("/v1/models", json={"name": "base", "adapter": None})
    assert again.status_code == 409
    client.post("/v1/models/base/activate").raise_for_status()
    assert answered_by(client)[:2] == ("base", None)


def test_other_tenants_versions_are_invisible_and_every_operation_needs_the_admin_scope(
    client: TestClient, settings: Settings, tiny_adapters: dict[str, Path]
) -> None:
    add_adapter(settings, tiny_adapters["alpha"], "alpha")
    register(client, "v1", "alpha")
    tenants = client.app.state.components.tenants  # type: ignore[attr-defined]
    other = tenants.create_tenant("tenant-b", "Tenant B", None)
    headers = {"Authorization": f"Bearer {new_key(client, tenant_id=other.id)}"}
    assert client.get("/v1/models", headers=headers).json()["data"] == []
    for method, path in [
        ("GET", "/v1/models/v1"),
        ("GET", "/v1/models/v1/events"),
        ("POST", "/v1/models/v1/activate"),
        ("POST", "/v1/models/v1/rollback"),
    ]:
        r = client.request(method, path, headers=headers)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "model_version_not_found"
    for scopes in (["chat"], ["agent"], ["chat", "agent"]):
        not_admin = {"Authorization": f"Bearer {new_key(client, scopes, DEFAULT_TENANT_ID)}"}
        for method, path in [
            ("GET", "/v1/models"),
            ("GET", "/v1/models/v1"),
            ("GET", "/v1/models/v1/events"),
            ("POST", "/v1/models/v1/activate"),
        ]:
            r = client.request(method, path, headers=not_admin)
            assert r.status_code == 403, (scopes, path, r.text)
            assert "'admin'" in r.json()["error"]["message"]
    assert client.get("/v1/models/v1").json()["status"] == "candidate"


# --- the gate ----------------------------------------------------------------------------------

ACTIVE = {
    "variant": "tuned+prompted",
    "token_f1": 0.40,
    "rouge_l": 0.35,
    "citation_accuracy": 0.80,
    "refusal_rate": 1.0,
    "false_refusal_rate": 0.05,
    "handoff_offered": None,
    "ttft_s": 0.50,
}


def test_gate_accepts_an_equal_candidate_and_refuses_a_worse_one() -> None:
    assert compare(dict(ACTIVE), ACTIVE, margin=0.02).passed
    within = compare(ACTIVE | {"token_f1": 0.385, "ttft_s": 0.70}, ACTIVE, margin=0.02)
    assert within.passed  # 1.5 points lower and 40% slower: within both margins
    worse = compare(ACTIVE | {"token_f1": 0.37}, ACTIVE, margin=0.02)
    assert not worse.passed
    assert [m.metric for m in worse.failures()] == ["token_f1"]
    assert "WORSE" in worse.table()
    # lower is better for in-scope refusals and for time to first token
    assert not compare(ACTIVE | {"false_refusal_rate": 0.10}, ACTIVE).passed
    assert not compare(ACTIVE | {"ttft_s": 0.80}, ACTIVE, ttft_margin=0.5).passed
    assert compare(ACTIVE | {"ttft_s": 0.80}, ACTIVE, ttft_margin=None).passed
    # a metric the set cannot measure is shown, not gated; one only the candidate lacks fails
    unmeasured = next(m for m in compare(ACTIVE, ACTIVE).metrics if m.metric == "handoff_offered")
    assert unmeasured.passed and unmeasured.note == "not measured"
    assert not compare(ACTIVE | {"citation_accuracy": None}, ACTIVE).passed


# --- tunedesk publish, through the running app ---------------------------------------------------


def evaluation(path: Path, variant: dict[str, Any], questions: int = 40) -> Path:
    """An evaluation JSON as `tunedesk eval answers --json` writes it."""
    setup = {"set": "sets/held-out", "questions": questions}
    path.write_text(json.dumps({"setup": setup, "variants": [variant], "answers": []}))
    return path


def never_evaluate(*_: Any) -> dict[str, Any]:
    raise AssertionError("the evaluation files should have been used")


def publish_options(tmp_path: Path, adapter: Path, candidate: dict[str, Any]) -> PublishOptions:
    active = ACTIVE | {"variant": "prompted"}  # no version yet: the base model, prompted
    return PublishOptions(
        adapter_dir=adapter,
        name="2025-06",
        candidate_eval=evaluation(tmp_path / "candidate.json", candidate),
        active_eval=evaluation(tmp_path / "active.json", active),
        activate=True,
    )


def test_publish_copies_registers_and_activates_a_candidate_that_passes(
    client: TestClient, settings: Settings, tiny_adapters: dict[str, Path], tmp_path: Path
) -> None:
    options = publish_options(tmp_path, tiny_adapters["alpha"], ACTIVE | {"token_f1": 0.45})
    result = publish(options, ModelsClient(client), settings, never_evaluate)
    assert result.comparison.passed and result.version is not None
    assert result.version["status"] == "active"
    assert settings.engine.adapters_dir is not None
    assert (settings.engine.adapters_dir / "2025-06" / "adapter_config.json").is_file()
    saved = json.loads((result.saved / "comparison.json").read_text())
    assert saved["passed"] and result.saved.parent == settings.data_dir / "publish"
    stored = client.get("/v1/models/2025-06").json()["evaluation"]
    token_f1 = next(m for m in stored["metrics"] if m["metric"] == "token_f1")
    assert token_f1["candidate"] == 0.45 and token_f1["active"] == 0.40
    assert answered_by(client)[:2] == ("2025-06", "2025-06")


def test_publish_refuses_a_worse_candidate_and_registers_nothing(
    client: TestClient, settings: Settings, tiny_adapters: dict[str, Path], tmp_path: Path
) -> None:
    options = publish_options(tmp_path, tiny_adapters["alpha"], ACTIVE | {"rouge_l": 0.30})
    result = publish(options, ModelsClient(client), settings, never_evaluate)
    assert not result.comparison.passed and result.version is None
    assert [m.metric for m in result.comparison.failures()] == ["rouge_l"]
    assert json.loads((result.saved / "comparison.json").read_text())["passed"] is False
    assert client.get("/v1/models").json()["data"] == []
    assert settings.engine.adapters_dir is not None
    assert not (settings.engine.adapters_dir / "2025-06").exists()


def test_publish_refuses_evaluations_of_different_sets(
    client: TestClient, settings: Settings, tiny_adapters: dict[str, Path], tmp_path: Path
) -> None:
    options = publish_options(tmp_path, tiny_adapters["alpha"], dict(ACTIVE))
    evaluation(tmp_path / "active.json", ACTIVE | {"variant": "prompted"}, questions=12)
    with pytest.raises(PublishError, match="same set"):
        publish(options, ModelsClient(client), settings, never_evaluate)


def held_out_dataset(folder: Path) -> Path:
    """A dataset version whose held-out split brings its recorded prompts (no index needed)."""
    from knowledge.catalog import load_system_prompt
    from knowledge.index import SearchHit
    from service.config import SAMPLE_KNOWLEDGE_DIR
    from service.prompting.builder import PromptBuilder

    router = "halcyon-router-x1000"
    docs = [("e3", "Error E3", "E3 means no cable is in the blue WAN port.")]
    hits = [
        SearchHit(i, 1.0, text, title, f"docs/{i}.md", [title], router) for i, title, text in docs
    ]
    builder = PromptBuilder(load_system_prompt(SAMPLE_KNOWLEDGE_DIR))
    rows = [
        {
            "id": f"row-{n}",
            "message_id": f"message-{n}",
            "product": router,
            "prompt": builder.build(question, hits, None).messages,
            "completion": [{"role": "assistant", "content": "No cable is in the WAN port [1]."}],
        }
        for n, question in enumerate(["It says E3?", "What is error E3 on my router?"])
    ]
    (folder / "sft").mkdir(parents=True)
    (folder / "sft" / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.mark.slow
def test_publish_runs_eval_answers_on_the_candidate_and_the_active_version(
    client: TestClient, settings: Settings, tiny_adapters: dict[str, Path], tmp_path: Path
) -> None:
    from training.publish import run_answer_eval

    add_adapter(settings, tiny_adapters["alpha"], "alpha")
    register(client, "v1", "alpha")
    client.post("/v1/models/v1/activate").raise_for_status()
    runs: list[tuple[str | None, str]] = []
    evaluate = run_answer_eval(settings, None, lambda cases, _: cases, lambda _: None)

    def recorded(set_dir: Path, adapter: Path | None, variant: str) -> dict[str, Any]:
        runs.append((adapter.name if adapter else None, variant))
        return evaluate(set_dir, adapter, variant)

    options = PublishOptions(
        adapter_dir=tiny_adapters["beta"],
        name="v2",
        set_dir=held_out_dataset(tmp_path / "datasets" / "v1"),
        margin=1.0,  # random adapters: this checks the plumbing, not which one is better
        ttft_margin=None,
    )
    result = publish(options, ModelsClient(client), settings, recorded)
    assert runs == [("beta", "tuned+prompted"), ("alpha", "tuned+prompted")]
    assert result.comparison.passed and result.version is not None
    assert result.comparison.candidate["questions"] == 2
    assert (result.comparison.active["version"], result.comparison.active["adapter"]) == (
        "v1",
        "alpha",
    )
    assert json.loads((result.saved / "active.json").read_text())["setup"]["questions"] == 2
    assert client.get("/v1/models/v2").json()["status"] == "candidate"


def test_offline_publish_before_start_is_the_version_that_answers(
    settings: Settings,
    tiny_adapters: dict[str, Path],
    tmp_path: Path,
    embedder: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`make run`'s demo-model step: publish into the database, then the service starts,
    loads the adapter and answers with it; running the step again changes nothing."""
    from typer.testing import CliRunner

    from service.app import Overrides, create_app
    from service.cli import app as cli

    assert settings.model.path is not None and settings.engine.adapters_dir is not None
    monkeypatch.setenv("TUNEDESK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TUNEDESK_MODEL__PATH", str(settings.model.path))
    monkeypatch.setenv("TUNEDESK_ENGINE__ADAPTERS_DIR", str(settings.engine.adapters_dir))
    candidate = evaluation(tmp_path / "candidate.json", ACTIVE | {"token_f1": 0.45})
    active = evaluation(tmp_path / "active.json", ACTIVE | {"variant": "prompted"})
    args = ["publish", str(tiny_adapters["alpha"]), "--name", "demo-1", "--offline"]
    args += ["--activate", "--skip-existing", "--candidate-eval", str(candidate)]
    args += ["--active-eval", str(active)]
    runner = CliRunner()
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "activated demo-1" in first.output
    again = runner.invoke(cli, args)
    assert again.exit_code == 0 and "already registered" in again.output
    refused = runner.invoke(cli, [*args, "--url", "http://127.0.0.1:9"])
    assert refused.exit_code == 2 and "--offline writes the database" in refused.output

    with TestClient(create_app(settings, Overrides(embedder=embedder))) as client:
        client.headers["Authorization"] = f"Bearer {new_key(client)}"
        assert engine_adapters(client) == ["demo-1"]
        assert answered_by(client)[:2] == ("demo-1", "demo-1")
        events = client.get("/v1/models/demo-1/events").json()
        assert [(e["action"], e["actor"]) for e in events] == [
            ("registered", "cli"),
            ("activated", "cli"),
        ]
