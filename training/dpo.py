"""`tunedesk train dpo`: TRL's DPOTrainer on the dataset's preference pairs, with LoRA.

Started from an SFT adapter (`init_adapter`), the run keeps training that adapter and uses a
frozen copy of base + SFT adapter as the reference model, so the result is still one LoRA
adapter on the base model that both engines load. Without one, a fresh LoRA is trained and the
base model (adapter switched off) is the reference.

TRL's own step sends every position of both answers and their prompt through the 262k-token
output layer and backpropagates through all of them, twice (policy and reference): on CPU a
step of two pairs took minutes. With `loss.frozen_prompt` (the default, as for SFT) the
log-probabilities come from training/loss.py's answer-only path instead: the prompt runs once
without a graph, only answer positions reach the head, and the reference's are computed once
before training (`precompute_ref_log_probs`). The loss is TRL's sigmoid DPO loss, the same
number, optionally with RPO's SFT term (`loss_type: [sigmoid, sft]`); bench/dpo_step.py
measures the step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.config import ConfigError, TrainJob
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
    "disable_tqdm": True,  # ProgressReport prints steps, loss, pairs won and time left instead
    "precompute_ref_log_probs": True,  # the reference is frozen: its log-probs once, not per step
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
    if job.loss.frozen_prompt and (unsupported := _beyond_sigmoid(inputs.config)):
        raise ConfigError(
            f"loss.frozen_prompt computes the sigmoid DPO loss and RPO's sft term, not "
            f"{unsupported}: set loss.frozen_prompt=false for TRL's own loss"
        )
    policy, reference, peft_config = _models(inputs.model, base_model, job)
    trainer_cls = answer_dpo_trainer(DPOTrainer) if job.loss.frozen_prompt else DPOTrainer
    trainer = trainer_cls(
        model=policy,
        ref_model=reference,
        args=inputs.config,
        train_dataset=inputs.train,
        eval_dataset=inputs.eval_dataset,
        processing_class=inputs.tokenizer,
        peft_config=peft_config,
        callbacks=[ProgressReport(report)],
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


ANSWER_ONLY_LOSSES = ("sigmoid", "sft")  # what the answer-only step computes (with weights)


def _beyond_sigmoid(config: Any) -> str:
    """The DPOConfig settings the answer-only step does not compute, as text ('' for none)."""
    settings = {
        "loss_type": ([t for t in config.loss_type if t not in ANSWER_ONLY_LOSSES], []),
        "label_smoothing": (config.label_smoothing, 0.0),
        "ld_alpha": (config.ld_alpha, None),
        "use_weighting": (config.use_weighting, False),
        "f_divergence_type": (str(config.f_divergence_type), "reverse_kl"),
    }
    return ", ".join(f"{k}={v!r}" for k, (v, default) in settings.items() if v != default)


def answer_dpo_trainer(base: type[Any]) -> type[Any]:
    """TRL's DPOTrainer with answer-only log-probabilities (training/loss.py) in its step."""
    from training.loss import completion_logprobs

    class AnswerDPOTrainer(base):
        def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> Any:
            import torch

            with torch.no_grad(), self._reference(model):
                logps = completion_logprobs(model, inputs, frozen_prompt=True)
            return logps.chunk(2, dim=0)

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            import torch
            import torch.nn.functional as F

            if return_outputs:  # only compute_metrics wants outputs: TRL's own path builds them
                return super().compute_loss(model, inputs, True, num_items_in_batch)
            chosen, rejected = completion_logprobs(model, inputs, frozen_prompt=True).chunk(2)
            if self.precompute_ref_logps:
                ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            else:
                reference = self.ref_model if self.ref_model is not None else model
                ref_chosen, ref_rejected = self.compute_ref_log_probs(reference, inputs)
            chosen_rewards = self.beta * (chosen - ref_chosen)
            rejected_rewards = self.beta * (rejected - ref_rejected)
            chosen_tokens = inputs["completion_mask"].chunk(2)[0][:, 1:].sum().clamp(min=1)
            terms = {
                "sigmoid": -F.logsigmoid(chosen_rewards - rejected_rewards).mean(),
                # RPO's SFT term: the chosen answers' mean token loss, so their likelihood holds
                "sft": -chosen.sum() / chosen_tokens,
            }
            weighted = zip(self.loss_types, self.loss_weights, strict=True)
            loss = sum(terms[kind] * weight for kind, weight in weighted)
            metrics = step_metrics(self, model, inputs)
            with torch.no_grad():
                metrics["rewards/chosen"].append(chosen_rewards.mean().item())
                metrics["rewards/rejected"].append(rejected_rewards.mean().item())
                wins = (chosen_rewards > rejected_rewards).float().mean().item()
                metrics["rewards/accuracies"].append(wins)
                margin = (chosen_rewards - rejected_rewards).mean().item()
                metrics["rewards/margins"].append(margin)
                metrics["logps/chosen"].append(chosen.mean().item())
                metrics["logps/rejected"].append(rejected.mean().item())
            return loss

        def prediction_step(
            self,
            model: Any,
            inputs: dict[str, Any],
            prediction_loss_only: bool,
            ignore_keys: list[str] | None = None,
        ) -> tuple[Any, None, None]:
            """The eval loss by the same path: TRL's would build every row's full logits (all
            eval pairs at once: the 9 pairs of the sample's split took 22 GB)."""
            import torch

            inputs = self._prepare_inputs(inputs)
            with torch.no_grad(), self.compute_loss_context_manager():
                loss = self.compute_loss(model, inputs)
            return loss.detach(), None, None

        def _reference(self, model: Any) -> Any:
            """Where the model is the policy itself, its adapter switched off."""
            import contextlib

            unwrapped = self.accelerator.unwrap_model(model)
            if self.ref_model is None and hasattr(unwrapped, "disable_adapter"):
                return unwrapped.disable_adapter()
            return contextlib.nullcontext()

    return AnswerDPOTrainer
