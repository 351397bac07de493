"""Progress of a long training run, printed as lines a log keeps (not a redrawn bar).

A CPU epoch takes many minutes: each logged step says how far the run is, how it is learning,
how fast it goes and how long is left; each checkpoint says how to resume from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback


class ProgressReport(TrainerCallback):
    """Reports steps, loss, answer-token accuracy, p(end of turn) (SFT), pairs won and reward
    margin (DPO), tokens/s and time left."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self._report = report
        self._started = time.perf_counter()
        self._first_step = 0
        self._last: tuple[float, int] | None = None  # (time, tokens) at the previous log

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._started = time.perf_counter()
        self._first_step = state.global_step
        resumed = f", resuming at step {state.global_step}" if state.global_step else ""
        self._report(
            f"Training {state.max_steps} steps{resumed}; checkpoints every {args.save_steps} "
            f"steps in {args.output_dir} (`--resume` continues from the newest)."
        )

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if logs and "eval_loss" in logs:
            self._report(self._evaluation(state, logs))
            return
        if not logs or "loss" not in logs:
            return
        now = time.perf_counter()
        parts = [f"step {state.global_step}/{state.max_steps}", f"loss {logs['loss']:.3f}"]
        if "mean_token_accuracy" in logs:
            parts.append(f"accuracy {logs['mean_token_accuracy']:.2f}")
        if "end_of_turn_prob" in logs:
            parts.append(f"p(end of turn) {logs['end_of_turn_prob']:.3f}")
        if "rewards/accuracies" in logs:  # DPO: how often the chosen answer wins, and by how much
            parts.append(f"pairs won {logs['rewards/accuracies']:.2f}")
            parts.append(f"margin {logs['rewards/margins']:.2f}")
        if "num_tokens" in logs:
            tokens = int(logs["num_tokens"])
            if self._last is not None and now > self._last[0]:
                parts.append(f"{(tokens - self._last[1]) / (now - self._last[0]):.0f} tokens/s")
            self._last = (now, tokens)
        parts.append(self._time_left(state, now - self._started))
        self._report(" | ".join(parts))

    @staticmethod
    def _evaluation(state: Any, logs: dict[str, Any]) -> str:
        parts = [f"eval at step {state.global_step}", f"loss {logs['eval_loss']:.3f}"]
        if "eval_rewards/accuracies" in logs:
            parts.append(f"pairs won {logs['eval_rewards/accuracies']:.2f}")
            parts.append(f"margin {logs['eval_rewards/margins']:.2f}")
        if "eval_end_of_turn_prob" in logs:
            parts.append(f"p(end of turn) {logs['eval_end_of_turn_prob']:.3f}")
        return " | ".join(parts)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._report(f"Checkpoint at step {state.global_step} saved in {args.output_dir}.")

    def _time_left(self, state: Any, seconds: float) -> str:
        done = state.global_step - self._first_step
        left = (state.max_steps - state.global_step) * seconds / done if done else 0.0
        return f"{seconds / 60:.1f} min so far, about {left / 60:.0f} min left"
