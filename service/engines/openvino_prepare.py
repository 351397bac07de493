"""`tunedesk model prepare --engine openvino`: the prepared HF model → an OpenVINO IR, verified.

The export needs optimum-intel, which wants transformers < 5 while the service runs 5.x, so it
runs in a second virtual environment that this module builds on first use (packages from the
ordinary package index, nothing from a model hub). That transformers reads the 4.x config form,
so the model's rope values are rewritten into it in a staging copy first. The result is checked
against the reference engine (transformers) on fixed prompts, with and without an adapter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from service.engines.artifacts import MANIFEST, Report, read_manifest

OV_MANIFEST = "tunedesk-openvino.json"
OV_FORMAT_VERSION = 1
EXPORT_VENV = Path.home() / ".cache" / "tunedesk" / "export-venv"
# torch first and pinned (the CPU build, as the Makefile installs it), so nothing pulls CUDA
EXPORT_TORCH = ["torch==2.13.0", "torchvision==0.28.0"]  # the torchvision that wants this torch
EXPORT_REQUIREMENTS = [
    *EXPORT_TORCH,
    # every package that writes the weights is pinned, so an export made on another day or
    # machine is the same model (docs/evaluation.md: answers moved between two installs)
    "optimum-intel==2.2.0",
    "optimum==2.3.0",
    "transformers==4.57.6",  # optimum-intel's Gemma 3 export is tested against 4.x
    "openvino==2026.4.1",
    "openvino-tokenizers==2026.4.1.0",
    "nncf==3.4.0",  # the int8 weight compression
]
# the service's weight settings → the export's format; OpenVINO's int8 is weight-only (its
# activations stay bf16/f32), so the local engine's "int8-head" has no separate export
WEIGHT_FORMATS = {"int8": "int8", "int8-head": "int8", "fp32": "fp32"}


def openvino_dir(model_dir: Path, weights: str = "int8") -> Path:
    """Where the OpenVINO export of a prepared model lives: beside it, one per weight format."""
    return model_dir.with_name(f"{model_dir.name}-openvino-{WEIGHT_FORMATS[weights]}")


def is_exported(model_dir: Path, weights: str = "int8") -> bool:
    """True when the export exists and was made from the model as it is now."""
    target = openvino_dir(model_dir, weights)
    manifest_path = target / OV_MANIFEST
    if not manifest_path.is_file() or not (target / "openvino_model.xml").is_file():
        return False
    manifest = json.loads(manifest_path.read_text())
    return bool(
        manifest.get("format_version") == OV_FORMAT_VERSION
        and manifest.get("source_fingerprint") == _fingerprint(model_dir)
    )


def export_openvino(
    model_dir: Path,
    report: Report = print,
    *,
    weights: str = "int8",
    force: bool = False,
    venv: Path = EXPORT_VENV,
    verify_adapter: Path | None = None,
) -> Path:
    """Export model_dir to OpenVINO IR (int8 or fp32 weights + tokenizer), verify, record."""
    target = openvino_dir(model_dir, weights)
    if is_exported(model_dir, weights) and not force:
        report(f"OpenVINO export already in {target} (nothing to do).")
        return target
    started = time.perf_counter()
    python = ensure_export_venv(venv, report)
    staging = target.with_name(target.name + ".partial")
    source = target.with_name(target.name + ".source")
    for path in (staging, source):
        shutil.rmtree(path, ignore_errors=True)
    _stage_source(model_dir, source)
    report(f"[openvino 2/3] Exporting {weights} weights, tokenizer and detokenizer ...")
    _run_export(python, source, staging, WEIGHT_FORMATS[weights])
    shutil.rmtree(source, ignore_errors=True)
    report("[openvino 3/3] Comparing greedy tokens with the reference engine ...")
    from service.engines.openvino_verify import verify_export

    agreement = verify_export(model_dir, staging, weights, verify_adapter, report)
    _write_manifest(staging, model_dir, weights, agreement, time.perf_counter() - started)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    report(f"OpenVINO model ready in {target} ({time.perf_counter() - started:.0f} s).")
    return target


def ensure_export_venv(venv: Path, report: Report) -> Path:
    """The export environment's python, building the environment first if needed."""
    python = venv / "bin" / "python"
    stamp = venv / ".tunedesk-requirements"
    wanted = "\n".join(EXPORT_REQUIREMENTS)
    if python.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return python
    report(f"[openvino 1/3] Building the export environment in {venv} (once, a few minutes) ...")
    base = getattr(sys, "_base_executable", sys.executable)
    _call([base, "-m", "venv", "--clear", str(venv)])
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _call([*pip, *EXPORT_TORCH])
    _call([*pip, *EXPORT_REQUIREMENTS])
    # optimum-intel requires torchvision, but PyPI's build does not load against the CPU torch
    # ("torchvision::nms does not exist") and breaks every transformers import: the export
    # itself never uses it, so it goes
    _call([*pip[:3], "uninstall", "--yes", "--quiet", "torchvision"])
    stamp.write_text(wanted)
    return python


def _call(cmd: list[str], **kwargs: Any) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({result.returncode}):\n{tail}")


def _stage_source(model_dir: Path, source: Path) -> None:
    """A copy of the model whose config.json is in the transformers 4.x form (weights linked)."""
    source.mkdir(parents=True)
    for path in model_dir.iterdir():
        if path.name in (MANIFEST, "config.json") or not path.is_file():
            continue
        try:
            os.link(path, source / path.name)
        except OSError:
            shutil.copy2(path, source / path.name)
    config = json.loads((model_dir / "config.json").read_text())
    (source / "config.json").write_text(json.dumps(config_for_transformers4(config), indent=2))


def config_for_transformers4(config: dict[str, Any]) -> dict[str, Any]:
    """Gemma 3's 5.x `rope_parameters` (per attention type) → 4.x rope_theta and friends."""
    converted = dict(config)
    rope = converted.pop("rope_parameters", None) or {}
    full = rope.get("full_attention", rope)
    sliding = rope.get("sliding_attention", {})
    if "rope_theta" in full:
        converted["rope_theta"] = full["rope_theta"]
    if "rope_theta" in sliding:
        converted["rope_local_base_freq"] = sliding["rope_theta"]
    scaling = {k: v for k, v in full.items() if k not in ("rope_theta", "rope_type")}
    rope_type = full.get("rope_type", "default")
    converted["rope_scaling"] = (
        None if rope_type == "default" else {"rope_type": rope_type, **scaling}
    )
    if "dtype" in converted:
        converted["torch_dtype"] = converted.pop("dtype")
    return converted


def _run_export(python: Path, source: Path, staging: Path, weight_format: str) -> None:
    cli = python.parent / "optimum-cli"
    cmd = [str(cli), "export", "openvino", "--model", str(source)]
    cmd += ["--task", "text-generation-with-past", "--weight-format", weight_format, str(staging)]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # never the hub
    _call(cmd, env=env)
    for name in ("openvino_model.xml", "openvino_tokenizer.xml", "openvino_detokenizer.xml"):
        if not (staging / name).is_file():
            raise RuntimeError(f"the export wrote no {name} in {staging}")
    for path in source.iterdir():  # the service renders prompts with the HF tokenizer
        if path.name.startswith(("tokenizer", "chat_template")):
            shutil.copy2(path, staging / path.name)


def _fingerprint(model_dir: Path) -> str:
    manifest = read_manifest(model_dir) or {}
    weights = model_dir / "model.safetensors"
    stat = weights.stat() if weights.is_file() else None
    size = stat.st_size if stat else 0
    mtime = int(stat.st_mtime) if stat else 0
    return f"{manifest.get('source_sha256', 'unmanaged')}:{size}:{mtime}"


def _write_manifest(
    target: Path, model_dir: Path, weights: str, agreement: dict[str, Any], seconds: float
) -> None:
    manifest = {
        "format_version": OV_FORMAT_VERSION,
        "source": str(model_dir),
        "source_fingerprint": _fingerprint(model_dir),
        "weights": weights,
        "exporter": [r for r in EXPORT_REQUIREMENTS if not r.startswith("torch")],
        "agreement": agreement,
        "export_seconds": round(seconds, 1),
    }
    (target / OV_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
