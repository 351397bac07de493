"""`tunedesk train dpo`: TRL's DPOTrainer on the dataset's preference pairs, with LoRA.

Started from an SFT adapter (`init_adapter`), the run keeps training that adapter and uses a
frozen copy of base + SFT adapter as the reference model, so the result is still one LoRA
adapter on the base model that both engines load. Without one, a fresh LoRA is trained and the
base model (adapter switched off) is the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.config import ConfigError, TrainJob
from training.runs import (
    Report,
    RunResult,
    finish_run,
    prepare_inputs,
    resume_point,
    starting_point,
)

DPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 5e-5,
    "beta": 0.1,
    "num_train_epochs": 1,
    "per_device_train_batch_size": 2,
    "max_length": 2048,
    "logging_steps": 5,
    "logging_first_step": True,
    "save_steps": 50,
    "save_total_limit": 3,
    "seed": 42,
    "report_to": "none",
    "activation_checkpointing": False,
}


def run_dpo(job: TrainJob, base_model: Path, resume: bool, report: Report = print) -> RunResult:
    """Preference-tune a LoRA adapter on the dataset's pairs; returns where it is."""
    from trl import DPOConfig, DPOTrainer

    inputs = prepare_inputs(job, base_model, "dpo", DPOConfig, DPO_DEFAULTS, report)
    limit = inputs.config.max_length
    if len(inputs.train) == 0:
        raise ConfigError(f"{job.dataset}: no preference pairs fit in {limit} tokens")
    report(
        f"DPO on {len(inputs.train)} pairs ({len(inputs.evaluation)} eval, "
        f"{inputs.dropped_train} dropped as too long)"
    )
    policy, reference, peft_config = _models(inputs.model, base_model, job)
    trainer = DPOTrainer(
        model=policy,
        ref_model=reference,
        args=inputs.config,
        train_dataset=inputs.train,
        eval_dataset=inputs.eval_dataset,
        processing_class=inputs.tokenizer,
        peft_config=peft_config,
    )
    checkpoint = resume_point(job, resume)
    return finish_run(trainer, job, base_model, checkpoint, report, inputs.dropped_train)


def _models(model: Any, base_model: Path, job: TrainJob) -> tuple[Any, Any, Any]:
    """(policy, reference, peft_config) for a fresh LoRA or for continuing an SFT adapter."""
    policy, peft_config = starting_point(model, job)
    if job.init_adapter is None:
        return policy, None, peft_config
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    frozen = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)
    reference = PeftModel.from_pretrained(frozen, str(job.init_adapter)).merge_and_unload()
    return policy, reference.eval(), None
