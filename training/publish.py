"""`tunedesk publish ADAPTER_DIR`: gate a new adapter against the active version, then ship it.

1. Both the candidate (tuned+prompted) and the version answering now (tuned+prompted with its
   adapter, or prompted when the base model answers) are evaluated on the same held-out set by
   `tunedesk eval answers`' code, or read from evaluation JSON files made earlier.
2. The gate (training/publish_gate.py) compares them; the comparison and both evaluations are
   saved under `<data_dir>/publish/`, whatever the verdict.
3. Only if it passes: the adapter is copied into the engine's adapters folder and registered
   through the running service (which hot-loads it), then optionally put on canary or activated.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from service.config import Settings
from training.publish_gate import Comparison, compare

CANDIDATE_VARIANT = "tuned+prompted"


class PublishError(RuntimeError):
    """Publishing cannot go on; the message says why and what to do."""


class VersionRegistry(Protocol):
    """The service's model-version API (service.versions.client.ModelsClient)."""

    def versions(self) -> dict[str, Any]: ...

    def register(
        self, name: str, adapter: str | None, evaluation: dict[str, Any] | None
    ) -> dict[str, Any]: ...

    def activate(self, name: str) -> dict[str, Any]: ...

    def canary(self, name: str, share: float) -> dict[str, Any]: ...


# (held-out set, adapter folder or None for the base model, variant) → evaluation JSON
Evaluate = Callable[[Path, Path | None, str], dict[str, Any]]


@dataclass
class PublishOptions:
    """What to publish, how strict the gate is, and what to do once it passes."""

    adapter_dir: Path
    name: str
    set_dir: Path | None = None
    margin: float = 0.02
    ttft_margin: float | None = 0.5
    canary: float | None = None
    activate: bool = False
    candidate_eval: Path | None = None
    active_eval: Path | None = None


@dataclass
class PublishResult:
    comparison: Comparison
    saved: Path
    version: dict[str, Any] | None = None  # None: refused by the gate
    steps: list[str] = field(default_factory=list)


def publish(
    options: PublishOptions,
    registry: VersionRegistry,
    settings: Settings,
    evaluate: Evaluate,
) -> PublishResult:
    """Gate, save the comparison, and (if it passes) copy, register, canary or activate."""
    _check_adapter(options.adapter_dir)
    listing = registry.versions()
    if any(v["name"] == options.name for v in listing["data"]):
        raise PublishError(f"A model version named {options.name!r} exists; pick another --name.")
    active = next((v for v in listing["data"] if v["status"] == "active"), None)
    active_adapter = active["adapter"] if active else listing["default_adapter"]
    candidate_report = _candidate_report(options, evaluate)
    active_report = _active_report(options, settings, active_adapter, evaluate)
    comparison = gate(candidate_report, active_report, active_adapter, options)
    comparison.active["version"] = active["name"] if active else None
    saved = save_comparison(
        settings.data_dir, options.name, comparison, candidate_report, active_report
    )
    result = PublishResult(comparison, saved)
    if comparison.passed:
        _ship(options, registry, settings, comparison, result)
    return result


def gate(
    candidate_report: dict[str, Any],
    active_report: dict[str, Any],
    active_adapter: str | None,
    options: PublishOptions,
) -> Comparison:
    """Compare the right variants of two evaluation reports made on the same set."""
    _same_set(candidate_report, active_report)
    active_variant = CANDIDATE_VARIANT if active_adapter else "prompted"
    comparison = compare(
        variant_of(candidate_report, CANDIDATE_VARIANT),
        variant_of(active_report, active_variant),
        options.margin,
        options.ttft_margin,
    )
    comparison.candidate["adapter"] = str(options.adapter_dir)
    comparison.active["adapter"] = active_adapter
    comparison.setup = {
        "set": candidate_report.get("setup", {}).get("set"),
        "questions": candidate_report.get("setup", {}).get("questions"),
        "compared_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return comparison


def variant_of(report: dict[str, Any], name: str) -> dict[str, Any]:
    """One variant's summary from an evaluation JSON (`tunedesk eval answers --json`)."""
    for variant in report.get("variants", []):
        if variant.get("variant") == name:
            return dict(variant)
    found = ", ".join(v.get("variant", "?") for v in report.get("variants", [])) or "none"
    raise PublishError(f"The evaluation has no {name!r} variant (it has: {found}).")


def _same_set(candidate: dict[str, Any], active: dict[str, Any]) -> None:
    ours, theirs = candidate.get("setup", {}), active.get("setup", {})
    for key in ("set", "questions"):
        if ours.get(key) != theirs.get(key):
            raise PublishError(
                f"The two evaluations were not made on the same set ({key}: "
                f"{ours.get(key)!r} vs {theirs.get(key)!r}); the comparison would mean nothing."
            )


def _candidate_report(options: PublishOptions, evaluate: Evaluate) -> dict[str, Any]:
    if options.candidate_eval is not None:
        return _read_json(options.candidate_eval)
    return evaluate(_set_dir(options), options.adapter_dir, CANDIDATE_VARIANT)


def _active_report(
    options: PublishOptions, settings: Settings, adapter: str | None, evaluate: Evaluate
) -> dict[str, Any]:
    if options.active_eval is not None:
        return _read_json(options.active_eval)
    if adapter is None:
        return evaluate(_set_dir(options), None, "prompted")
    folder = settings.engine.adapters_dir / adapter if settings.engine.adapters_dir else None
    if folder is None or not (folder / "adapter_config.json").is_file():
        raise PublishError(
            f"The active adapter {adapter!r} is not in the adapters folder "
            f"({settings.engine.adapters_dir}); evaluate it where it is and pass --active-eval."
        )
    return evaluate(_set_dir(options), folder, CANDIDATE_VARIANT)


def _set_dir(options: PublishOptions) -> Path:
    if options.set_dir is None:
        raise PublishError("No held-out set: pass --set DIR (an eval set or a dataset version).")
    return options.set_dir


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PublishError(f"Cannot read the evaluation {path}: {exc}") from exc
    return data


def save_comparison(
    data_dir: Path,
    name: str,
    comparison: Comparison,
    candidate_report: dict[str, Any],
    active_report: dict[str, Any],
) -> Path:
    """<data_dir>/publish/<UTC time>-<name>/{comparison,candidate,active}.json; the folder."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    folder = data_dir / "publish" / f"{stamp}-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    for file, data in [
        ("comparison.json", comparison.as_dict()),
        ("candidate.json", candidate_report),
        ("active.json", active_report),
    ]:
        (folder / file).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return folder


def _ship(
    options: PublishOptions,
    registry: VersionRegistry,
    settings: Settings,
    comparison: Comparison,
    result: PublishResult,
) -> None:
    target = install_adapter(options.adapter_dir, settings.engine.adapters_dir, options.name)
    result.steps.append(f"adapter copied to {target}")
    result.version = registry.register(options.name, options.name, comparison.as_dict())
    result.steps.append(
        f"registered {options.name}: the service loads its adapter (at start if offline)"
    )
    if options.activate:
        result.version = registry.activate(options.name)
        result.steps.append(f"activated {options.name}")
    elif options.canary:
        result.version = registry.canary(options.name, options.canary)
        result.steps.append(f"{options.name} answers {options.canary:.0%} of conversations")


def install_adapter(source: Path, adapters_dir: Path | None, name: str) -> Path:
    """Copy the adapter folder to <adapters_dir>/<name>; an identical copy there is reused,
    a different one is never overwritten (a live version may be using it)."""
    if adapters_dir is None:
        raise PublishError(
            "The engine has no adapters folder: set TUNEDESK_ENGINE__ADAPTERS_DIR for both the "
            "service and this command."
        )
    target = adapters_dir / name
    if target.exists():
        if folder_digest(target) != folder_digest(source):
            raise PublishError(f"{target} exists with other files; pick another --name.")
        return target
    partial = target.with_name(f".{name}.partial")  # the engine never sees half a copy
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    partial.rename(target)
    return target


def folder_digest(folder: Path) -> str:
    """A hash of every file's relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _check_adapter(folder: Path) -> None:
    if not (folder / "adapter_config.json").is_file():
        raise PublishError(f"{folder} is not a LoRA adapter folder (no adapter_config.json).")


def run_answer_eval(
    settings: Settings,
    limit: int | None,
    progress: Any,
    report: Callable[[str], None],
) -> Evaluate:
    """The Evaluate function backed by `tunedesk eval answers` (training/evaluation)."""

    def evaluate(set_dir: Path, adapter: Path | None, variant: str) -> dict[str, Any]:
        from training.evaluation.cases import load_cases
        from training.evaluation.run import AnswerEvalOptions, evaluate_answers
        from training.evaluation.variants import parse_variants

        label = f"{variant} with {adapter}" if adapter else variant
        report(f"evaluating {label} on {set_dir}")
        options = AnswerEvalOptions(
            variants=parse_variants(variant),
            adapter=str(adapter) if adapter else None,
            max_new_tokens=settings.engine.max_new_tokens,
            command=f"tunedesk publish (evaluating {label})",
        )
        result = evaluate_answers(load_cases(set_dir, limit), options, settings, progress, report)
        data: dict[str, Any] = json.loads(result.as_json())
        return data

    return evaluate
