"""deploy/ checked with the real tools, without a Docker engine, a cluster or a GPU.

Kubernetes manifests against the Kubernetes schemas (kubernetes-validate, bundled schemas),
Prometheus config and alert rules with promtool (Debian package `prometheus`), the alerts'
unit tests, the Compose file against the compose-spec schema (vendored by check-jsonschema),
the Dockerfile with hadolint, and every Grafana and alert query against the metrics a running
app really exports. docs/deploy.md says what these checks cannot show.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES_VERSION = "1.33.0"
# vLLM's own metrics (docs.vllm.ai, "Production Metrics"): no vLLM runs here to scrape them
VLLM_METRICS = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:generation_tokens_total",
    "vllm:prompt_tokens_total",
    "vllm:prefix_cache_hits_total",
    "vllm:prefix_cache_queries_total",
}
E5 = "My router shows error E5 and the internet light is red"


def _manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path, document


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: .ci/run installs it")
        pytest.skip(f"{name} is not installed (Debian: apt-get install prometheus; pip: dev extra)")
    return found


def _run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


# -- Kubernetes ---------------------------------------------------------------------------


def test_kubernetes_manifests_match_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    kinds = []
    for path, document in _manifests():
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {document['kind']} {document['metadata']['name']}: {exc}")
        kinds.append(document["kind"])
    for kind in ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "StatefulSet"]:
        assert kind in kinds
    assert kinds.count("StatefulSet") == 2  # Qdrant and PostgreSQL


def test_the_schema_check_refuses_a_misspelt_field() -> None:
    import kubernetes_validate

    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}
    with pytest.raises(kubernetes_validate.ValidationError, match="prots"):
        kubernetes_validate.validate(service | {"spec": {"prots": []}}, KUBERNETES_VERSION, True)


def test_kustomization_applies_every_manifest_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files - {"secrets.example.yaml"}


def _pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for _, document in _manifests():
        if document["kind"] in {"Deployment", "StatefulSet", "Job"}:
            yield document["metadata"]["name"], document["spec"]["template"]["spec"]


def test_every_server_container_has_probes_and_resource_requests() -> None:
    for name, pod in _pod_specs():
        for container in pod["containers"]:
            assert container["resources"]["requests"], (name, container["name"])
            if name != "tunedesk-init" and container["name"] != "adapter-sync":
                assert "readinessProbe" in container and "livenessProbe" in container, name


def test_adapters_are_one_volume_at_the_services_adapters_folder_everywhere() -> None:
    """The service sends vLLM `<adapters_dir>/<name>`: every pod must see it at that path."""
    config = next(d for _, d in _manifests() if d["metadata"]["name"] == "tunedesk")["data"]
    adapters_dir = config["TUNEDESK_ENGINE__ADAPTERS_DIR"]
    seen = set()
    for name, pod in _pod_specs():
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod.get("volumes", [])
            if "persistentVolumeClaim" in v
        }
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                if claims.get(mount["name"]) == "tunedesk-adapters":
                    assert mount["mountPath"] == adapters_dir, (name, container["name"])
                    seen.add(name)
    assert seen == {"tunedesk", "tunedesk-init", "tunedesk-vllm"}


def test_vllm_tensor_parallelism_is_configurable() -> None:
    documents = {(d["kind"], d["metadata"]["name"]): d for _, d in _manifests()}
    assert documents["ConfigMap", "tunedesk-vllm"]["data"]["TENSOR_PARALLEL_SIZE"] == "1"
    vllm = documents["Deployment", "tunedesk-vllm"]["spec"]["template"]["spec"]
    container = vllm["containers"][0]
    assert "--tensor-parallel-size=$(TENSOR_PARALLEL_SIZE)" in container["args"]
    assert {"--enable-lora", "--enable-prefix-caching"} <= set(container["args"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    overlay = (KUBERNETES / "overlays" / "tensor-parallel-2" / "kustomization.yaml").read_text()
    assert "TENSOR_PARALLEL_SIZE" in overlay and "nvidia.com~1gpu" in overlay


def test_the_tensor_parallel_overlay_patches_gpus_and_tp_together() -> None:
    """kustomize is not installed here: apply the overlay's JSON patches the way it would."""
    import jsonpatch
    import kubernetes_validate

    overlay_dir = KUBERNETES / "overlays" / "tensor-parallel-2"
    overlay = yaml.safe_load((overlay_dir / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../.."]
    documents = {(d["kind"], d["metadata"]["name"]): d for _, d in _manifests()}
    for patch in overlay["patches"]:
        key = (patch["target"]["kind"], patch["target"]["name"])
        documents[key] = jsonpatch.apply_patch(documents[key], yaml.safe_load(patch["patch"]))
        kubernetes_validate.validate(documents[key], KUBERNETES_VERSION, strict=True)
    size = documents["ConfigMap", "tunedesk-vllm"]["data"]["TENSOR_PARALLEL_SIZE"]
    resources = documents["Deployment", "tunedesk-vllm"]["spec"]["template"]["spec"]["containers"][
        0
    ]["resources"]
    assert size == "2"
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 2


# -- Prometheus ---------------------------------------------------------------------------


def test_promtool_accepts_the_scrape_config_and_the_alert_rules() -> None:
    promtool = _tool("promtool")
    assert "SUCCESS" in _run(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert "SUCCESS" in _run(promtool, "check", "rules", str(PROMETHEUS / "alerts.yml"))


def test_alerts_fire_on_what_they_are_named_after() -> None:
    """promtool's unit tests: queue full vs engine down, a thumbs-down jump, ..."""
    promtool = _tool("promtool")
    assert "SUCCESS" in _run(promtool, "test", "rules", str(PROMETHEUS / "alerts.test.yml"))


def test_the_issue_s_alerts_exist() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "HighErrorRate",
        "TTFTP95High",
        "EngineDown",
        "EngineQueueFull",
        "WebhookDeliveriesGivenUp",
        "ThumbsDownJumpAfterModelChange",
    } <= names


# -- Compose ------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec_schema() -> None:
    _run(
        sys.executable,
        "-m",
        "check_jsonschema",
        "--builtin-schema",
        "vendor.compose-spec",
        str(COMPOSE),
    )


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # PyYAML resolves the << merge keys


def test_compose_engines_get_adapters_at_the_services_adapters_folder() -> None:
    services = _compose()["services"]
    adapters_dir = services["tunedesk-gpu"]["environment"]["TUNEDESK_ENGINE__ADAPTERS_DIR"]
    for name in ["tunedesk-gpu", "tunedesk-cpu", "engine", "vllm", "init"]:
        mounts = [m.split(":") for m in services[name]["volumes"]]
        assert [["adapters", adapters_dir]] == [m[:2] for m in mounts if m[0] == "adapters"], name


def test_compose_profiles_switch_the_service_to_their_engine() -> None:
    services = _compose()["services"]
    gpu, cpu = services["tunedesk-gpu"], services["tunedesk-cpu"]
    assert gpu["profiles"] == services["vllm"]["profiles"] == ["gpu"]
    assert cpu["profiles"] == services["engine"]["profiles"] == ["cpu"]
    assert gpu["environment"]["TUNEDESK_ENGINE__KIND"] == "vllm"
    assert gpu["environment"]["TUNEDESK_ENGINE__VLLM_URL"].startswith("http://vllm:8001/")
    assert cpu["environment"]["TUNEDESK_ENGINE__VLLM_URL"].startswith("http://engine:8001/")
    assert services["engine"]["command"] == ["engine"]  # `tunedesk engine serve`
    assert {"--enable-lora", "--enable-prefix-caching"} <= set(services["vllm"]["command"])
    assert "driver" in services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]


def test_compose_starts_in_order_and_only_init_migrates() -> None:
    services = _compose()["services"]
    assert services["init"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in ["tunedesk-gpu", "tunedesk-cpu"]:
        depends = services[name]["depends_on"]
        assert depends["init"] == {"condition": "service_completed_successfully"}
        engine = "vllm" if name.endswith("gpu") else "engine"
        assert depends[engine] == {"condition": "service_healthy"}
        assert services[name]["environment"]["TUNEDESK_INIT_ON_START"] == "0"
    for name, service in services.items():
        if name != "init":
            assert "test" in service["healthcheck"], name


def test_compose_admin_key_is_a_secret() -> None:
    compose = _compose()
    assert compose["secrets"]["admin_api_key"] == {"environment": "TUNEDESK_ADMIN_API_KEY"}
    environment = compose["services"]["tunedesk-gpu"]["environment"]
    assert environment["TUNEDESK_ADMIN_API_KEY_FILE"] == "/run/secrets/admin_api_key"
    assert environment["TUNEDESK_ENVIRONMENT"] == "production"  # placeholders refused


def test_entrypoint_reads_secrets_from_files(tmp_path: Path) -> None:
    key = tmp_path / "admin_api_key"
    key.write_text("k" * 40)
    env = os.environ | {
        "TUNEDESK_ADMIN_API_KEY_FILE": str(key),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    result = subprocess.run(
        ["sh", str(DEPLOY / "entrypoint.sh"), "sh", "-c", 'printf %s "$TUNEDESK_ADMIN_API_KEY"'],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == "k" * 40


def test_replicas_wait_for_the_release_s_migrations(tmp_path: Path) -> None:
    """`wait-migrated` (the API pods' init container) holds until `migrate` (the Job) is done."""
    env = os.environ | {
        "TUNEDESK_DATA_DIR": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    entrypoint = ["sh", str(DEPLOY / "entrypoint.sh")]
    with pytest.raises(subprocess.TimeoutExpired) as waiting:
        subprocess.run([*entrypoint, "wait-migrated"], env=env, capture_output=True, timeout=8)
    assert b"waiting for migrations: database at None" in (waiting.value.stdout or b"")
    subprocess.run([*entrypoint, "migrate"], env=env, check=True, timeout=60)
    subprocess.run([*entrypoint, "wait-migrated"], env=env, check=True, timeout=30)
    api = next(pod for name, pod in _pod_specs() if name == "tunedesk")
    init = api["initContainers"][0]
    assert init["args"] == ["wait-migrated"]


# -- Dockerfile ---------------------------------------------------------------------------


def test_hadolint_accepts_the_dockerfile() -> None:
    _run(_tool("hadolint"), str(ROOT / "Dockerfile"))


def test_dockerfile_runs_as_a_user_with_cpu_torch_and_a_prepared_model() -> None:
    text = (ROOT / "Dockerfile").read_text()
    runtime = text[text.rindex("\nFROM ") :]
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert '--index-url "${TORCH_INDEX_URL}" torch==2.13.0' in text
    assert "USER 10001:10001" in runtime and "HEALTHCHECK" in runtime
    assert "COPY --from=model" in runtime and "model prepare" not in runtime


# -- dashboards and alerts against a running app's /metrics -------------------------------


def _metric_names(expression: str) -> set[str]:
    import promql_parser

    for variable, value in {"$__rate_interval": "5m", "$tenant": ".*"}.items():
        expression = expression.replace(variable, value)
    return set(_selectors(promql_parser.parse(expression)))


def _selectors(node: Any) -> Iterator[str]:
    import promql_parser

    if isinstance(node, promql_parser.VectorSelector):
        by_matcher = (m.value for m in node.matchers.matchers if m.name == "__name__")
        yield node.name or next(by_matcher)  # {__name__="x"} leaves .name empty
    for child in ("lhs", "rhs", "expr", "param", "vector_selector"):
        if getattr(node, child, None) is not None:
            yield from _selectors(getattr(node, child))
    for argument in getattr(node, "args", None) or []:
        yield from _selectors(argument)


def _dashboard_queries(path: Path) -> list[str]:
    dashboard = json.loads(path.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        metric = variable["query"].removeprefix("label_values(").split(",")[0]
        queries.append(metric)
    return queries


def _alert_queries() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _exported(metrics_text: str) -> set[str]:
    """Every sample name the text can hold, also of metrics without a sample yet."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    names = set()
    for family in text_string_to_metric_families(metrics_text):
        names |= {family.name + s for s in suffixes.get(family.type, [""])}
        names |= {sample.name for sample in family.samples}
    return names


def test_dashboards_and_alerts_query_metrics_the_app_exports(client: TestClient) -> None:
    answer = client.post("/v1/chat", json={"message": E5})
    assert answer.status_code == 200, answer.text
    rated = client.post(
        f"/v1/messages/{answer.json()['message_id']}/rating", json={"rating": "bad"}
    )
    assert rated.status_code < 300, rated.text
    client.get("/healthz")
    exported = _exported(client.get("/metrics").text) | {"up"}  # `up`: Prometheus' own
    assert "tunedesk_time_to_first_token_seconds_bucket" in exported  # a sample, not only HELP
    queries = _alert_queries()
    for path in [DASHBOARDS / "tunedesk.json", DASHBOARDS / "tunedesk-quality.json"]:
        queries += _dashboard_queries(path)
    used: set[str] = set()
    for query in queries:
        names = _metric_names(query) - VLLM_METRICS
        assert names <= exported, f"{query!r} names {names - exported}, not in /metrics"
        used |= names
    assert {"tunedesk_ratings_total", "tunedesk_webhook_deliveries_total"} <= used


def test_the_vllm_dashboard_queries_vllm_metrics() -> None:
    for query in _dashboard_queries(DASHBOARDS / "vllm.json"):
        names = _metric_names(query)
        assert names <= VLLM_METRICS | {"up"}, names


def test_a_panel_naming_a_metric_the_app_lacks_is_caught() -> None:
    query = 'sum(rate(tunedesk_answer_total[$__rate_interval])) / count({__name__="up"})'
    assert _metric_names(query) == {"tunedesk_answer_total", "up"}  # a typo of ..._answers_total


# -- the vLLM adapter-sync sidecar against `tunedesk engine serve` -------------------------


def _adapter_sync_script(tmp_path: Path) -> Path:
    """The sidecar's script, as the ConfigMap in vllm.yaml mounts it."""
    configmap = next(
        d for _, d in _manifests() if d["metadata"]["name"] == "tunedesk-vllm-adapter-sync"
    )
    script = tmp_path / "adapter_sync.py"
    script.write_text(configmap["data"]["adapter_sync.py"])
    return script


def test_adapter_sync_loads_every_published_adapter_into_its_replica(
    engine_server: str, tiny_adapters: dict[str, Path], tmp_path: Path
) -> None:
    script = _adapter_sync_script(tmp_path)
    folder = tmp_path / "adapters"
    folder.mkdir()
    names = {"sync-alpha": tiny_adapters["alpha"], "sync-beta": tiny_adapters["beta"]}
    for name, source in names.items():
        shutil.copytree(source, folder / name)
    (folder / "not-an-adapter").mkdir()
    env = os.environ | {"VLLM_URL": engine_server, "ADAPTERS_DIR": str(folder)}
    command = [sys.executable, str(script), "--once"]
    try:
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        assert first.stdout.count("loaded") == 2
        models = httpx.get(f"{engine_server}/models", timeout=10).json()["data"]
        assert set(names) <= {m["id"] for m in models if m.get("parent")}
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "loaded" not in again.stdout  # nothing twice
    finally:
        for name in names:
            httpx.post(f"{engine_server}/unload_lora_adapter", json={"lora_name": name})


def test_adapter_sync_reports_an_unreachable_vllm(tmp_path: Path) -> None:
    script = _adapter_sync_script(tmp_path)
    env = os.environ | {"VLLM_URL": "http://127.0.0.1:9/v1", "ADAPTERS_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(script), "--once"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1 and "not reachable" in result.stderr


def test_settings_names_in_the_manifests_exist() -> None:
    """A misspelt TUNEDESK_ variable is silently ignored by pydantic-settings: catch it here."""
    config = next(d for _, d in _manifests() if d["metadata"]["name"] == "tunedesk")["data"]
    environment = {k: v for k, v in config.items() if k != "TUNEDESK_INIT_ON_START"}
    compose = _compose()["services"]["tunedesk-gpu"]["environment"]
    environment |= {
        k: v
        for k, v in compose.items()
        if not k.endswith("_FILE") and k != "TUNEDESK_INIT_ON_START" and "${" not in str(v)
    }
    fields = _settings_env_names()
    for name in environment:
        assert name in fields, f"{name} is not a setting of service/config.py"


def _settings_env_names() -> set[str]:
    names = set()
    for field, info in Settings.model_fields.items():
        nested = getattr(info.annotation, "model_fields", None)
        if nested:
            names |= {f"TUNEDESK_{field}__{sub}".upper() for sub in nested}
        else:
            names.add(f"TUNEDESK_{field}".upper())
    return names
