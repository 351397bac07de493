"""What every training run shares: the base model, dataset rows, LoRA, checkpoints, the record.

A finished run leaves `<output_dir>/adapter/` (a PEFT LoRA adapter both engines load) with
`tunedesk-adapter.json` beside it: base model, dataset version and hash, settings, losses,
speed and device. Checkpoints go to `<output_dir>/checkpoints/`, so `--resume` continues.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from training.config import ConfigError, LoraSettings, TrainJob

Report = Callable[[str], None]
ADAPTER_MANIFEST = "tunedesk-adapter.json"
Config = TypeVar("Config")


@dataclass
class RunResult:
    """Where the adapter is and what the run measured."""

    adapter_dir: Path
    steps: int
    steps_run: int  # in this process: fewer than `steps` after --resume
    seconds: float
    first_loss: float | None
    last_loss: float | None
    eval_loss: float | None

    @property
    def steps_per_second(self) -> float:
        return self.steps_run / self.seconds if self.seconds else 0.0


@dataclass
class Inputs:
    """What both trainers start from: TRL's config, the base model, the dataset's splits."""

    config: Any
    tokenizer: Any
    model: Any
    train: Any
    evaluation: Any
    dropped_train: int
    dropped_eval: int

    @property
    def eval_dataset(self) -> Any:
        """The eval split when there is one and evaluation is switched on."""
        return (
            self.evaluation if len(self.evaluation) and self.config.eval_strategy != "no" else None
        )


def prepare_inputs(
    job: TrainJob,
    base_model: Path,
    part: str,
    config_cls: type[Any],
    defaults: dict[str, Any],
    report: Report,
) -> Inputs:
    """Config, base model and the `part` (sft or dpo) splits, too-long rows dropped."""
    if job.dataset is None:
        raise ConfigError("no dataset: pass --dataset or set `dataset:` in the config")
    config = trainer_config(config_cls, defaults, job)
    tokenizer, model = load_base(base_model, report, job.base_dtype)
    train, dropped = load_rows(job.dataset, part, "train", tokenizer, config.max_length)
    evaluation, dropped_eval = load_rows(job.dataset, part, "eval", tokenizer, config.max_length)
    return Inputs(config, tokenizer, model, train, evaluation, dropped, dropped_eval)


def trainer_config(cls: type[Config], defaults: dict[str, Any], job: TrainJob) -> Config:
    """TRL's config from our defaults, then the job's `trainer` section; TRL validates it."""
    values = defaults | _device_defaults() | job.trainer
    values["output_dir"] = str(job.output_dir / "checkpoints")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"trainer settings: {exc}") from exc


def _device_defaults() -> dict[str, Any]:
    """bf16 on a GPU that has it; plain fp32 on CPU, where TRL's bf16 default would fail."""
    import torch

    if torch.cuda.is_available():
        return {"bf16": torch.cuda.is_bf16_supported()}
    return {"bf16": False, "use_cpu": True}


def load_base(model_dir: Path, report: Report, dtype: str = "float32") -> tuple[Any, Any]:
    """The prepared model and its tokenizer (which carries the service's chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"no model in {model_dir}: run `tunedesk model prepare` first")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if not tokenizer.chat_template:
        raise ConfigError(f"{model_dir}: the tokenizer has no chat template; prepare the model")
    device = f"CUDA ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "CPU"
    weights = base_dtype(dtype)
    report(f"Loading {model_dir} on {device}, base weights in {weights} ...")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, weights))
    model.config.use_cache = False
    return tokenizer, model


def base_dtype(setting: str) -> str:
    """`auto`: bfloat16 where the hardware computes it natively (CUDA, AVX-512 BF16 or AMX)."""
    import torch

    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bfloat16" if native else "float32"


def load_rows(
    dataset_dir: Path, part: str, split: str, tokenizer: Any, max_length: int | None
) -> tuple[Any, int]:
    """One split of a dataset part, only the columns TRL reads; too-long rows dropped."""
    from datasets import Dataset

    path = dataset_dir / part / f"{split}.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path} not found: is {dataset_dir} a dataset version folder?")
    answers = ("completion",) if part == "sft" else ("chosen", "rejected")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        rows.append({"prompt": record["prompt"]} | {k: record[k] for k in answers})
    kept = [r for r in rows if _fits(r, answers, tokenizer, max_length)]
    columns = ["prompt", *answers]
    return Dataset.from_list(kept) if kept else Dataset.from_dict({c: [] for c in columns}), len(
        rows
    ) - len(kept)


def _fits(row: dict[str, Any], answers: tuple[str, ...], tokenizer: Any, limit: int | None) -> bool:
    if limit is None:
        return True
    for answer in answers:
        ids = tokenizer.apply_chat_template(row["prompt"] + row[answer], tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        if len(ids) > limit:
            return False
    return True


def lora_config(settings: LoraSettings) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM",
        r=settings.r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.target_modules,
    )


def step_metrics(trainer: Any, model: Any, inputs: dict[str, Any]) -> Any:
    """The trainer's metrics for this step's mode, with a training step's tokens counted (what
    TRL's own compute_loss does before the loss-specific figures are added)."""
    mode = "train" if model.training else "eval"
    metrics = trainer._metrics[mode]
    if mode == "train":
        trainer._total_train_tokens += int(inputs["attention_mask"].sum())
        metrics["num_tokens"] = [trainer._total_train_tokens]
    return metrics


def starting_point(model: Any, job: TrainJob) -> tuple[Any, Any]:
    """(model, peft_config) for TRL: a fresh LoRA, or the job's `init_adapter` trained further."""
    if job.init_adapter is None:
        return model, lora_config(job.lora)
    from peft import PeftModel

    if not (job.init_adapter / "adapter_config.json").is_file():
        raise ConfigError(f"{job.init_adapter} is not a LoRA adapter (no adapter_config.json)")
    return PeftModel.from_pretrained(model, str(job.init_adapter), is_trainable=True), None


def resume_point(job: TrainJob, resume: bool) -> str | None:
    """The newest checkpoint when resuming; an error when asked to resume with none."""
    if not resume:
        return None
    checkpoints = sorted(
        (job.output_dir / "checkpoints").glob("checkpoint-*"),
        key=lambda p: int(p.name.rsplit("-", 1)[1]),
    )
    if not checkpoints:
        raise ConfigError(f"nothing to resume: no checkpoint in {job.output_dir / 'checkpoints'}")
    return str(checkpoints[-1])


def finish_run(
    trainer: Any,
    job: TrainJob,
    base_model: Path,
    resume_from: str | None,
    report: Report,
    dropped: int,
) -> RunResult:
    """Train, save the adapter and its record, and say what happened."""
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - started
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    evals = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    adapter_dir = job.output_dir / "adapter"
    trainer.save_model(str(adapter_dir))
    result = RunResult(
        adapter_dir=adapter_dir,
        steps=int(trainer.state.global_step),
        steps_run=int(trainer.state.global_step) - _checkpoint_step(resume_from),
        seconds=seconds,
        first_loss=losses[0] if losses else None,
        last_loss=losses[-1] if losses else None,
        eval_loss=evals[-1] if evals else None,
    )
    _write_record(adapter_dir, job, base_model, trainer, result, dropped)
    report(
        f"Adapter in {adapter_dir}: {result.steps_run} steps in {seconds:.0f} s "
        f"({result.steps_per_second:.2f} steps/s); loss {result.first_loss} → {result.last_loss}"
        + (f", eval loss {result.eval_loss:.4f}" if result.eval_loss is not None else "")
    )
    return result


def _checkpoint_step(checkpoint: str | None) -> int:
    return int(Path(checkpoint).name.rsplit("-", 1)[1]) if checkpoint else 0


def _write_record(
    adapter_dir: Path,
    job: TrainJob,
    base_model: Path,
    trainer: Any,
    result: RunResult,
    dropped: int,
) -> None:
    import peft
    import torch
    import transformers
    import trl

    from service.engines.artifacts import read_manifest
    from training.dataset import read_manifest as read_dataset_manifest

    assert job.dataset is not None
    dataset = read_dataset_manifest(job.dataset)
    record = {
        "format": "tunedesk.adapter/v1",
        "kind": job.split,
        "created_at": datetime.now(UTC).isoformat(),
        "base_model": {"path": str(base_model), "manifest": read_manifest(base_model)},
        "dataset": {
            "path": str(job.dataset),
            "version": dataset.get("version"),
            "content_sha256": dataset.get("content_sha256"),
            "dropped_too_long": dropped,
            "public_sets": public_sets_record(dataset),
        },
        "lora": job.lora.model_dump(),
        "loss": job.loss.model_dump(),
        "base_dtype": base_dtype(job.base_dtype),
        "init_adapter": str(job.init_adapter) if job.init_adapter else None,
        "trainer": job.trainer,
        "seed": trainer.args.seed,
        "metrics": {
            "steps": result.steps,
            "steps_this_run": result.steps_run,
            "seconds_this_run": round(result.seconds, 1),
            "steps_per_second": round(result.steps_per_second, 4),
            "first_train_loss": result.first_loss,
            "last_train_loss": result.last_loss,
            "eval_loss": result.eval_loss,
        },
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "trl": trl.__version__,
        },
    }
    (adapter_dir / ADAPTER_MANIFEST).write_text(json.dumps(record, indent=2) + "\n")


def public_sets_record(dataset_manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The public data mixed into the dataset, with its attribution, for the adapter's record
    (whoever ships the adapter owes the set's licence terms)."""
    return [
        {
            "name": entry.get("name"),
            "attribution": entry.get("attribution"),
            "examples": entry.get("examples"),
            "train_docs": len(entry.get("train_docs") or []),
            "held_out_docs": len(entry.get("held_out_docs") or []),
        }
        for entry in (dataset_manifest.get("source") or {}).get("public_sets") or []
    ]
