"""Retraining from the console (admins): build a dataset from the rated transcripts, train an
SFT adapter, run the four-variant evaluation, publish it through the gate, then canary,
activate or roll back.

Each step is the same `tunedesk` command an operator runs, started as a background job;
versions go through the model-version service (service/versions), as the API does.

The publish job is `tunedesk publish`: the adapter's evaluation against the version answering
now, on the same questions, and the version is registered only when no metric is worse by more
than the margin. Activating or canarying a version from the console needs that verdict in its
`evaluation`; rolling back never does (it restores what answered before)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from service.config import SAMPLE_KNOWLEDGE_DIR
from service.console.export import export_lines
from service.console.guard import AdminDep, AdminWriterDep, ViewerDep
from service.console.jobs import log_tail
from service.console.pages import render, to_login
from service.console.parts import Console, ConsoleDep
from service.console.queue import QueueFilter
from service.errors import Conflict, Forbidden, InvalidRequest
from service.store.models import ConsoleJob, ModelVersion
from service.versions.store import NewVersion

router = APIRouter(include_in_schema=False)
VARIANTS = "base,prompted,tuned,tuned+prompted"


class JobIn(BaseModel):
    """One retraining step; the fields each kind reads are named in its help."""

    kind: Literal["dataset", "train", "eval", "publish"]
    dataset: str | None = Field(default=None, description="train: a dataset folder (v<N>).")
    max_steps: int | None = Field(default=None, ge=1, le=100_000)
    adapter: str | None = Field(
        default=None, description="eval, publish: the trained adapter folder."
    )
    eval_set: str | None = Field(default=None, description="eval: an eval-set folder.")
    limit: int | None = Field(default=20, ge=1, le=10_000, description="eval: questions asked.")
    name: str | None = Field(
        default=None, max_length=100, description="publish: the new version's name."
    )
    margin: float = Field(
        default=0.02, ge=0.0, le=1.0, description="publish: how much worse a metric may be."
    )
    ttft_margin: float = Field(
        default=0.5, ge=0.0, description="publish: how much slower the first token may be."
    )


class GateNotPassed(Conflict):
    code = "publish_gate_not_passed"


class VersionAction(BaseModel):
    action: Literal["register", "activate", "canary", "rollback"]
    name: str = Field(min_length=1, max_length=100)
    adapter: str | None = Field(default=None, max_length=200)
    share: float = Field(default=0.1, ge=0.0, le=1.0)


def job_out(job: ConsoleJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "output": job.output,
        "adapter": _argument(job.command, "--adapter"),
        "command": " ".join(job.command),
        "exit_code": job.exit_code,
        "log": log_tail(job),
        "report": _report(job),
    }


def _argument(command: list[str], option: str) -> str | None:
    """The value an option had in a job's command line, if it was given."""
    at = command.index(option) if option in command else -1
    return command[at + 1] if 0 <= at < len(command) - 1 else None


def _report(job: ConsoleJob) -> str | None:
    """An evaluation job's four-variant table (its evaluation.md), once written."""
    path = Path(job.output or "", "evaluation.md")
    return (
        path.read_text(encoding="utf-8")[:20_000] if job.kind == "eval" and path.is_file() else None
    )


@router.get("/console/retrain")
async def retrain_page(request: Request, agent: ViewerDep, console: ConsoleDep) -> Response:
    if agent is None:
        return to_login(request)
    if not agent.is_admin:
        raise Forbidden("Only an admin of this workspace may retrain.")
    jobs = await asyncio.to_thread(console.jobs.list, agent.tenant_id)
    versions = await console.components.versions.list_versions(agent.tenant_id)
    return render(
        request,
        "retrain.html",
        agent,
        active="retrain",
        jobs=[job_out(j) for j in jobs],
        versions=versions,
        datasets=_datasets(console),
        eval_set=SAMPLE_KNOWLEDGE_DIR / "eval",
    )


def _datasets(console: Console) -> list[str]:
    root = console.components.settings.data_dir / "datasets"
    return sorted((str(p) for p in root.glob("v*") if p.is_dir()), reverse=True)


@router.get("/console/api/jobs/{job_id}")
def get_job(job_id: str, agent: AdminDep, console: ConsoleDep) -> dict[str, Any]:
    return job_out(console.jobs.get(agent.tenant_id, job_id))


@router.post("/console/api/jobs", status_code=202)
async def start_job(body: JobIn, agent: AdminWriterDep, console: ConsoleDep) -> dict[str, Any]:
    """Start a retraining step in the background; poll GET /console/api/jobs/{id}."""
    if body.kind == "publish":
        rows = await console.components.versions.list_versions(agent.tenant_id)
        args = await asyncio.to_thread(_publish_command, console, agent.tenant_id, body, rows)
        output = None
    else:
        args, output = await asyncio.to_thread(_command, console, agent.tenant_id, body)
    job = await asyncio.to_thread(
        console.jobs.start, agent.tenant_id, body.kind, args, output, agent.agent_id
    )
    return job_out(job)


def _command(console: Console, tenant_id: str, body: JobIn) -> tuple[list[str], Path | None]:
    settings = console.components.settings
    work = console.jobs.root
    work.mkdir(parents=True, exist_ok=True)
    if body.kind == "dataset":
        transcripts = work / f"{tenant_id}-transcripts.jsonl"
        with transcripts.open("w", encoding="utf-8") as out:
            out.writelines(export_lines(console.reviews.sessions, tenant_id, QueueFilter()))
        docs = settings.knowledge.catalog_dir / "docs"
        args = ["dataset", "build", "--transcripts", str(transcripts)]
        args += ["--out", str(settings.data_dir / "datasets")]
        return [*args, *(["--docs", str(docs)] if docs.is_dir() else [])], None
    if body.kind == "train":
        if not body.dataset or not Path(body.dataset, "manifest.json").is_file():
            raise InvalidRequest("Choose a dataset folder (build one first).")
        output = work / f"adapter-{len(list(work.glob('adapter-*'))) + 1}"
        args = ["train", "sft", "--dataset", body.dataset, "--output-dir", str(output)]
        args += ["--model", str(settings.model.directory)]  # the base this service serves
        held_out = Path(body.dataset, "sft", "eval.jsonl")
        if not held_out.is_file() or not held_out.stat().st_size:  # few ratings yet
            args += ["--set", "trainer.eval_strategy=no"]
        steps = ["--max-steps", str(body.max_steps)] if body.max_steps else []
        return [*args, *steps], output / "adapter"  # the run writes checkpoints/ beside it
    if not body.adapter or not Path(body.adapter).is_dir():
        raise InvalidRequest("Choose a trained adapter folder to evaluate.")
    report = _report_folder(console, Path(body.adapter))
    eval_set = Path(body.eval_set or SAMPLE_KNOWLEDGE_DIR / "eval")
    args = ["eval", "answers", "--set", str(eval_set)]
    args += ["--variants", VARIANTS, "--adapter", body.adapter, "--report", str(report)]
    docs = settings.knowledge.catalog_dir / "docs"
    if not (eval_set / "docs.jsonl").is_file() and docs.is_dir():  # questions about our docs
        args += ["--extra-docs", str(docs)]
    return [*args, *(["--limit", str(body.limit)] if body.limit else [])], report


def _report_folder(console: Console, adapter: Path) -> Path:
    """Where an adapter's four-variant evaluation goes: one folder per adapter (a console
    training run's adapter is <jobs>/adapter-N/adapter, so the name alone would collide)."""
    work, resolved = console.jobs.root, adapter.resolve()
    inside = work.resolve() in resolved.parents
    parts = resolved.relative_to(work.resolve()).parts if inside else ()
    return work / f"evaluation-{'-'.join(parts) if parts else adapter.name}"


def _publish_command(
    console: Console, tenant_id: str, body: JobIn, versions: list[ModelVersion]
) -> list[str]:
    """`tunedesk publish`, gating the adapter against the version answering now."""
    if not body.name:
        raise InvalidRequest("Name the new version (name).")
    if any(v.name == body.name for v in versions):
        raise InvalidRequest(f"A model version named {body.name!r} exists; pick another name.")
    adapter = Path(body.adapter or "")
    if not body.adapter or not (adapter / "adapter_config.json").is_file():
        raise InvalidRequest("Choose a trained adapter folder to publish.")
    report = _report_folder(console, adapter) / "evaluation.json"
    setup = _evaluation_setup(report, adapter)
    args = ["publish", str(adapter), "--name", body.name, "--offline", "--tenant", tenant_id]
    args += ["--margin", str(body.margin), "--ttft-margin", str(body.ttft_margin)]
    active = next((v for v in versions if v.status == "active"), None)
    active_adapter = active.adapter if active else console.components.versions.default_adapter
    if active_adapter is None:  # the base model answers now: the report's prompted variant
        return [*args, "--candidate-eval", str(report), "--active-eval", str(report)]
    # an adapter answers now: both are evaluated by the publish job, the same way
    return [*args, "--set", str(setup["set"]), "--limit", str(setup["questions"])]


def _evaluation_setup(report: Path, adapter: Path) -> dict[str, Any]:
    try:
        setup: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))["setup"]
    except (OSError, ValueError, KeyError):
        setup = {}
    if Path(str(setup.get("adapter"))).resolve() != adapter.resolve():
        raise InvalidRequest(
            f"Evaluate {adapter} first (step 3): the gate compares its evaluation with the "
            "version answering now, on the same questions."
        )
    return setup


@router.post("/console/api/versions")
async def version_action(
    body: VersionAction, agent: AdminWriterDep, console: ConsoleDep
) -> dict[str, Any]:
    """Register, activate (publish), canary or roll back a model version. Activating and
    canarying need the version to have passed the publish gate."""
    versions, tenant, actor = console.components.versions, agent.tenant_id, agent.email
    if body.action == "register":
        base = console.components.engine.model_name
        adapter = await asyncio.to_thread(_shipped, console, body.name, body.adapter)
        row = await versions.register(tenant, NewVersion(body.name, adapter, base), actor)
    elif body.action == "activate":
        _check_gate(await versions.get(tenant, body.name))
        row = await versions.activate(tenant, body.name, actor)
    elif body.action == "canary":
        if body.share > 0:
            _check_gate(await versions.get(tenant, body.name))
        row = await versions.canary(tenant, body.name, body.share, actor)
    else:
        rolled = await versions.rollback(tenant, body.name, actor)
        row = rolled.rolled_back
    return {"name": row.name, "status": row.status, "message": f"{row.name}: {row.status}"}


def _check_gate(version: ModelVersion) -> None:
    """A version may answer customers only with the publish gate's passing verdict."""
    verdict = version.evaluation or {}
    if verdict.get("passed") is True:
        return
    if "passed" not in verdict:
        raise GateNotPassed(
            f"{version.name} has not been through the publish gate (it was registered without "
            "an evaluation). Evaluate its adapter (step 3) and publish it (step 4) first."
        )
    worse = ", ".join(m["metric"] for m in verdict.get("metrics", []) if not m.get("passed"))
    raise GateNotPassed(
        f"{version.name} did not pass the publish gate (worse on {worse or 'a metric'}); "
        "train a better adapter, or roll back."
    )


def _shipped(console: Console, name: str, adapter: str | None) -> str | None:
    """An adapter a console job trained is copied into the adapters folder (as `tunedesk
    publish` does) under the version's name; any other value names an adapter already there."""
    trained = Path(adapter) if adapter else None
    if trained is None or not trained.is_dir() or console.jobs.root not in trained.parents:
        return adapter
    target = Path(console.components.settings.engine.adapters_dir or ".") / name
    if target.exists():
        raise InvalidRequest(f"The adapters folder already has {name!r}; pick another name.")
    shutil.copytree(trained, target, ignore=shutil.ignore_patterns("checkpoint-*"))
    return name
