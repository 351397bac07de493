"""`tunedesk train sft`: TRL's SFTTrainer with a PEFT LoRA on the prepared base model.

The dataset rows are the exact chat messages the service renders (system rules, template,
numbered sources, history, question) plus the answer, and the prepared model's tokenizer holds
the same chat template the engines use, so training and serving see the same prompt. Loss is on
the answer only. Examples longer than `max_length` are dropped (and counted), never truncated:
a cut prompt or answer would teach the wrong thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.config import ConfigError, TrainJob
from training.runs import (
    Report,
    RunResult,
    finish_run,
    load_base,
    load_rows,
    lora_config,
    resume_point,
    trainer_config,
)

SFT_DEFAULTS: dict[str, Any] = {
    "learning_rate": 2e-4,
    "num_train_epochs": 3,
    "per_device_train_batch_size": 4,
    "max_length": 2048,
    "logging_steps": 5,
    "logging_first_step": True,
    "save_steps": 50,
    "save_total_limit": 3,
    "seed": 42,
    "report_to": "none",
    "activation_checkpointing": False,  # small model: speed over memory
    "dataset_num_proc": None,
}


def run_sft(job: TrainJob, base_model: Path, resume: bool, report: Report = print) -> RunResult:
    """Train a LoRA adapter on the dataset's SFT part; returns where it is and how it went."""
    from trl import SFTConfig, SFTTrainer

    if job.dataset is None:
        raise ConfigError("no dataset: pass --dataset or set `dataset:` in the config")
    config = trainer_config(SFTConfig, SFT_DEFAULTS, job)
    tokenizer, model = load_base(base_model, report)
    train, dropped = load_rows(job.dataset, "sft", "train", tokenizer, config.max_length)
    evaluation, dropped_eval = load_rows(job.dataset, "sft", "eval", tokenizer, config.max_length)
    if len(train) == 0:
        raise ConfigError(
            f"{job.dataset}: no SFT training examples fit in {config.max_length} tokens"
        )
    report(
        f"SFT on {len(train)} examples ({len(evaluation)} eval; {dropped + dropped_eval} "
        f"dropped as longer than {config.max_length} tokens)"
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=train,
        eval_dataset=evaluation if len(evaluation) and config.eval_strategy != "no" else None,
        processing_class=tokenizer,
        peft_config=lora_config(job.lora),
    )
    return finish_run(trainer, job, base_model, resume_point(job, resume), report, dropped)
