"""DPO-step benchmark: what a CPU preference step costs TRL, and what the answer-only path saves.

A DPO step needs, for each pair, the summed log-probability of the chosen and the rejected
answer under the policy (with gradients) and under the frozen reference (without). Measured per
pair on real dataset rows (the service's full prompt plus the two answers), one LoRA (r 16, all
linear layers), in one process and alternating so a busy machine slows each alike:

- `trl`: TRL's DPOTrainer on CPU: both rows' every position through the 262k-token output
  layer (its fused head) and backpropagated, and the reference the same way without gradients,
  on every step;
- `answer`: training/loss.py's `completion_logprobs`: only answer positions reach the head;
- `frozen-prompt`: that, with the prompt run once without a graph for both answers of the pair
  (its cache repeated) and only the answers backpropagated (`loss.frozen_prompt`, the default);
  its reference is computed once before training (`precompute_ref_log_probs`), so a step pays
  for it once per epoch, not per step: the `reference` column is that one pass.

    python -m bench.dpo_step [--dataset var/datasets/v1] [--pairs 2] [--rounds 1] [--threads N]
        [--modes trl,frozen-prompt] [--json]
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from bench.train_step import lora_model, step_arguments
from service.config import Settings
from training.loss import completion_logprobs

MODES = ("trl", "answer", "frozen-prompt")


def pairs(dataset: Path, count: int, tokenizer: Any) -> list[dict[str, torch.Tensor]]:
    """The first `count` preference pairs as TRL lays them out: chosen row, rejected row."""
    batches = []
    lines = (dataset / "dpo" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines[:count]:
        row = json.loads(line)
        start = len(
            tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True)["input_ids"]
        )
        full = [
            tokenizer.apply_chat_template(row["prompt"] + row[side])["input_ids"]
            for side in ("chosen", "rejected")
        ]
        width = max(map(len, full))
        ids = torch.zeros(2, width, dtype=torch.long)
        attention, completion = torch.zeros_like(ids), torch.zeros_like(ids)
        for i, tokens in enumerate(full):
            ids[i, : len(tokens)] = torch.tensor(tokens)
            attention[i, : len(tokens)] = 1
            completion[i, start : len(tokens)] = 1
        batches.append(
            {"input_ids": ids, "attention_mask": attention, "completion_mask": completion}
        )
    return batches


def trl_logprobs(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
    out = model(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        labels=labels,
        fused_lm_head=True,
        use_cache=False,
    )
    return out.log_probs.sum(dim=1)


def policy_step(mode: str, model: Any, inputs: dict[str, torch.Tensor]) -> float:
    started = time.perf_counter()
    if mode == "trl":
        logps = trl_logprobs(model, inputs)
    else:
        logps = completion_logprobs(model, inputs, frozen_prompt=mode == "frozen-prompt")
    (logps[1] - logps[0]).backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def reference_pass(mode: str, model: Any, inputs: dict[str, torch.Tensor]) -> float:
    started = time.perf_counter()
    with torch.no_grad(), model.disable_adapter():
        if mode == "trl":
            trl_logprobs(model, inputs)
        else:
            completion_logprobs(model, inputs, frozen_prompt=mode == "frozen-prompt")
    return time.perf_counter() - started


def main() -> None:
    args, modes = step_arguments(__doc__.splitlines()[0], MODES, "pairs", 2, rounds=1)
    from transformers import AutoTokenizer

    model_dir = Settings().model.directory
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    batches = pairs(args.dataset, args.pairs, tokenizer)
    fused = lora_model(model_dir, torch.float32, fused=True) if "trl" in modes else None
    plain = lora_model(model_dir, torch.float32, fused=False) if set(modes) - {"trl"} else None
    models = {m: fused if m == "trl" else plain for m in modes}
    for mode in modes:  # warm-up: the first step of each pays for allocation and kernels
        policy_step(mode, models[mode], batches[0])
    seconds: dict[str, dict[str, list[float]]] = {m: {"policy": [], "reference": []} for m in modes}
    for _ in range(args.rounds):
        for inputs in batches:
            for mode in modes:
                seconds[mode]["policy"].append(policy_step(mode, models[mode], inputs))
                seconds[mode]["reference"].append(reference_pass(mode, models[mode], inputs))
    tokens = statistics.fmean(int(b["attention_mask"].sum()) for b in batches)
    report(seconds, tokens, args)


def report(seconds: dict[str, dict[str, list[float]]], tokens: float, args: Any) -> None:
    def per_epoch_step(mode: str) -> float:  # what one pair costs an epoch's steps
        policy = statistics.median(seconds[mode]["policy"])
        return policy + statistics.median(seconds[mode]["reference"])

    base = per_epoch_step(next(iter(seconds)))
    results = {
        mode: {
            "policy_s": round(statistics.median(times["policy"]), 2),
            "reference_s": round(statistics.median(times["reference"]), 2),
            "pair_s": round(per_epoch_step(mode), 2),
            "speedup": round(base / per_epoch_step(mode), 2),
        }
        for mode, times in seconds.items()
    }
    if args.json:
        print(json.dumps({"tokens_per_pair": tokens, "threads": torch.get_num_threads()} | results))
        return
    print(f"{args.pairs} pairs x {args.rounds} rounds, {tokens:.0f} tokens a pair (median times)")
    print(f"{'mode':<14} {'policy s':>9} {'reference s':>12} {'s/pair':>7} {'speed-up':>9}")
    for mode, r in results.items():
        line = f"{r['policy_s']:>9.2f} {r['reference_s']:>12.2f} {r['pair_s']:>7.2f}"
        print(f"{mode:<14} {line} {r['speedup']:>8.2f}x")


if __name__ == "__main__":
    main()
