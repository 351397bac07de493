"""`tunedesk train sft`: TRL's SFTTrainer with a PEFT LoRA on the prepared base model.

The dataset rows are the exact chat messages the service renders (system rules, template,
numbered sources, history, question) plus the answer, and the prepared model's tokenizer holds
the same chat template the engines use, so training and serving see the same prompt. Loss is on
the answer only, computed from the answer positions' logits alone, with the end of turn weighted
(training/loss.py). Examples longer than `max_length` are dropped (and counted), never truncated:
a cut prompt or answer would teach the wrong thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.engines.chat_template import END_OF_TURN
from training.config import ConfigError, TrainJob
from training.loss import AnswerLoss
from training.progress import ProgressReport
from training.runs import (
    Report,
    RunResult,
    finish_run,
    prepare_inputs,
    resume_point,
    starting_point,
    step_metrics,
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
    "disable_tqdm": True,  # ProgressReport prints steps, loss, speed and time left instead
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
    model, peft_config = starting_point(inputs.model, job)
    trainer = answer_trainer(SFTTrainer)(
        model=model,
        args=inputs.config,
        train_dataset=inputs.train,
        eval_dataset=inputs.eval_dataset,
        processing_class=inputs.tokenizer,
        peft_config=peft_config,
        callbacks=[ProgressReport(report)],
    )
    end_of_turn = inputs.tokenizer.convert_tokens_to_ids(END_OF_TURN)
    trainer.answer_loss = AnswerLoss(
        end_of_turn, job.loss.end_of_turn_weight, frozen_prompt=job.loss.frozen_prompt
    )
    checkpoint = resume_point(job, resume)
    return finish_run(trainer, job, base_model, checkpoint, report, inputs.dropped_train)


def answer_trainer(base: type[Any]) -> type[Any]:
    """TRL's SFTTrainer with AnswerLoss in place of its full-vocabulary loss."""

    class AnswerSFTTrainer(base):
        answer_loss: AnswerLoss

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            if return_outputs:  # only compute_metrics wants logits: TRL's own path builds them
                return super().compute_loss(model, inputs, True, num_items_in_batch)
            parts = self.answer_loss(model, inputs, num_items_in_batch)
            metrics = step_metrics(self, model, inputs)
            metrics["mean_token_accuracy"].append(parts.correct / max(parts.labelled, 1))
            if parts.end_of_turn_prob is not None:
                metrics["end_of_turn_prob"].append(parts.end_of_turn_prob)
            return parts.loss

    return AnswerSFTTrainer
