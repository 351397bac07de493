"""Training-step benchmark: where a CPU SFT step's time goes, and what the answer-only loss saves.

One LoRA (r 16, all linear layers) forward + backward per real dataset row (the service's full
prompt plus the rated answer), in three ways, in one process and alternating so a busy machine
slows each alike:

- `trl`: what TRL's SFTTrainer does on CPU: its fused head scores every position through the
  262k-token output layer (fp32 weights);
- `answer`: training/loss.py: only positions whose next token is labelled go through the head;
- `answer+bf16`: the same with the frozen base weights in bfloat16 (AMX / AVX-512 BF16);
- `frozen-prompt`: answer-only, and the prompt run once without a graph (its KV cache), so
  only the answer positions are backpropagated (`loss.frozen_prompt`, the CPU default);
- `frozen-prompt+bf16`: that with bfloat16 base weights.

    python -m bench.train_step [--dataset var/datasets/v1] [--rows 3] [--rounds 2] [--threads N]
        [--modes trl,frozen-prompt] [--json]

On a machine whose cores other processes also use, `--threads 1` (or OMP_NUM_THREADS=1 for
`tunedesk train sft`) is several times faster than two threads: each of a step's thousands of
small parallel regions waits for its slowest thread, and a descheduled thread holds them all.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from service.config import Settings
from service.engines.chat_template import END_OF_TURN
from training.loss import IGNORE, AnswerLoss

MODES = ("trl", "answer", "answer+bf16", "frozen-prompt", "frozen-prompt+bf16")


def rows(
    dataset: Path, count: int, tokenizer: Any, split: str = "train"
) -> list[dict[str, torch.Tensor]]:
    """The first `count` rows of a split as model inputs, labelled on the answer only."""
    batches = []
    lines = (dataset / "sft" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines[:count]:
        row = json.loads(line)
        prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True)
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"])["input_ids"]
        ids = torch.tensor([full])
        labels = ids.clone()
        labels[:, : len(prompt["input_ids"])] = IGNORE
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    return batches


def lora_model(model_dir: Path, dtype: torch.dtype, fused: bool) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    if fused:
        add_fused_lm_head(model)  # before PEFT, as SFTTrainer does
    lora = LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, target_modules="all-linear")
    peft_model = get_peft_model(model, lora)
    peft_model.train()
    return peft_model


def step(
    mode: str, model: Any, inputs: dict[str, torch.Tensor], losses: dict[bool, AnswerLoss]
) -> float:
    started = time.perf_counter()
    if mode == "trl":
        value = model(**inputs, fused_lm_head=True, use_cache=False).loss
    else:
        value = losses[mode.startswith("frozen")](model, inputs).loss
    value.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def step_arguments(
    description: str, modes: tuple[str, ...], count: str, count_default: int, rounds: int
) -> tuple[argparse.Namespace, list[str]]:
    """The training-step benchmarks' shared options, parsed; torch's threads set."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", type=Path, default=Path("var/datasets/v1"))
    parser.add_argument(f"--{count}", type=int, default=count_default)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--modes", default=",".join(modes), help=f"comma-separated: {modes}")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = [m for m in args.modes.split(",") if m]
    if unknown := set(chosen) - set(modes):
        parser.error(f"unknown modes {sorted(unknown)}; choose from {', '.join(modes)}")
    return args, chosen


def main() -> None:
    args, modes = step_arguments(__doc__.splitlines()[0], MODES, "rows", 3, rounds=2)
    from transformers import AutoTokenizer

    model_dir = Settings().model.directory
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    batches = rows(args.dataset, args.rows, tokenizer)
    end_of_turn: Any = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    loss = {
        frozen: AnswerLoss(int(end_of_turn), 5.0, frozen_prompt=frozen) for frozen in (False, True)
    }
    built: dict[tuple[torch.dtype, bool], Any] = {}

    def model_for(mode: str) -> Any:
        key = (torch.bfloat16 if mode.endswith("bf16") else torch.float32, mode == "trl")
        if key not in built:
            built[key] = lora_model(model_dir, key[0], fused=key[1])
        return built[key]

    models = {mode: model_for(mode) for mode in modes}
    for mode in modes:  # warm-up: the first step of each pays for allocation and kernels
        step(mode, models[mode], batches[0], loss)
    seconds: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for inputs in batches:
            for mode in modes:
                seconds[mode].append(step(mode, models[mode], inputs, loss))
    tokens = statistics.fmean(int(b["input_ids"].numel()) for b in batches)
    report(seconds, tokens, args)


def report(seconds: dict[str, list[float]], tokens: float, args: argparse.Namespace) -> None:
    base = statistics.median(next(iter(seconds.values())))  # the first mode given
    results = {
        mode: {
            "s_per_example": round(statistics.median(times), 2),
            "tokens_per_s": round(tokens / statistics.median(times), 1),
            "speedup": round(base / statistics.median(times), 2),
        }
        for mode, times in seconds.items()
    }
    if args.json:
        print(json.dumps({"mean_tokens": tokens, "threads": torch.get_num_threads()} | results))
        return
    print(f"{args.rows} rows x {args.rounds} rounds, {tokens:.0f} tokens a row (median times)")
    print(f"{'mode':<19} {'s/example':>10} {'tokens/s':>9} {'speed-up':>9}")
    for mode, r in results.items():
        line = f"{r['s_per_example']:>10.2f} {r['tokens_per_s']:>9.1f} {r['speedup']:>8.2f}x"
        print(f"{mode:<19} {line}")


if __name__ == "__main__":
    main()
