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
    lora_config,
    prepare_inputs,
    resume_point,
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

    inputs = prepare_inputs(job, base_model, "sft", SFTConfig, SFT_DEFAULTS, report)
    limit = inputs.config.max_length
    if len(inputs.train) == 0:
        raise ConfigError(f"{job.dataset}: no SFT training examples fit in {limit} tokens")
    report(
        f"SFT on {len(inputs.train)} examples ({len(inputs.evaluation)} eval; "
        f"{inputs.dropped_train + inputs.dropped_eval} dropped as longer than {limit} tokens)"
    )
    trainer = SFTTrainer(
        model=inputs.model,
        args=inputs.config,
        train_dataset=inputs.train,
        eval_dataset=inputs.eval_dataset,
        processing_class=inputs.tokenizer,
        peft_config=lora_config(job.lora),
    )
    checkpoint = resume_point(job, resume)
    return finish_run(trainer, job, base_model, checkpoint, report, inputs.dropped_train)
