"""Training jobs: a YAML file, overridden from the command line.

The trainer's own settings go, unchanged, to TRL's `SFTConfig` / `DPOConfig` (the `trainer`
section), so every TRL and transformers option is available and validated by TRL itself; only
what TRL does not know (the base model, the dataset, the LoRA shape) is declared here.

    tunedesk train sft --config training/configs/sft.yaml --set trainer.learning_rate=1e-4
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(Exception):
    """A training configuration that cannot be used; the message says what to fix."""


class LoraSettings(BaseModel):
    """The LoRA adapter's shape (PEFT `LoraConfig`)."""

    r: int = Field(
        default=16, ge=1, le=256, description="Rank (vLLM serves up to --max-lora-rank)."
    )
    lora_alpha: int = Field(default=32, ge=1, description="Scaling numerator (alpha / r).")
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on LoRA input.")
    target_modules: str | list[str] = Field(
        default="all-linear", description="Layers to adapt; all-linear is what vLLM serves."
    )


class LossSettings(BaseModel):
    """What the losses weigh: answer tokens only, the end of turn more (SFT), and for both SFT
    and DPO whether the prompt is run without a graph (training/loss.py)."""

    end_of_turn_weight: float = Field(
        default=5.0,
        ge=1.0,
        le=100.0,
        description="Loss weight of `<end_of_turn>`: the base model never emits it unweighted.",
    )
    frozen_prompt: bool = Field(
        default=True,
        description=(
            "Run the prompt without a graph and backpropagate through the answer only: the "
            "same loss, the prompt positions' share of the gradient dropped, a step several "
            "times faster (bench/train_step.py; for DPO, bench/dpo_step.py, which also runs "
            "a pair's prompt once for both answers). false: the full gradient (and for DPO, "
            "TRL's own step and loss types)."
        ),
    )


class TrainJob(BaseModel):
    """One training run: what to train on, what to produce, and TRL's settings."""

    model: Path | None = Field(
        default=None,
        description="Prepared base model folder (default: `tunedesk model prepare`'s).",
    )
    dataset: Path | None = Field(default=None, description="A dataset version folder (v<N>).")
    output_dir: Path = Field(default=Path("var/training/sft"), description="Checkpoints, adapter.")
    split: str = Field(default="sft", description="Dataset part: sft or dpo.")
    init_adapter: Path | None = Field(
        default=None,
        description="Train this adapter further (DPO: an SFT adapter, also the reference).",
    )
    lora: LoraSettings = LoraSettings()
    loss: LossSettings = LossSettings()
    base_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="Frozen base weights: auto is bfloat16 where the GPU or CPU (AVX-512 BF16, "
        "AMX) computes it natively, else float32. LoRA weights stay float32.",
    )
    trainer: dict[str, Any] = Field(
        default_factory=dict, description="Fields of TRL's SFTConfig / DPOConfig."
    )


def load_job(path: Path | None, overrides: Sequence[str] = ()) -> TrainJob:
    """The job in a YAML file (or the defaults), with `key.sub=value` overrides applied."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read YAML: {exc}") from exc
    for override in overrides:
        apply_override(data, override)
    try:
        return TrainJob.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path or 'configuration'}: {fields}") from exc


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set one dotted key from `key.sub=value`; the value is read as YAML (numbers, lists)."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not key=value (e.g. trainer.max_steps=10)")
    *parents, leaf = key.strip().split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
        node = child
    value = yaml.safe_load(raw)
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        value = raw.strip()  # YAML 1.1 reads no/yes/on/off as booleans: eval_strategy=no
    node[leaf] = _number(value)


def _number(value: Any) -> Any:
    """PyYAML leaves 1e-4 (no dot) a string; read it as the number it is."""
    if not isinstance(value, str):
        return value
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
