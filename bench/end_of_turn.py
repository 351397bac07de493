"""How likely an adapter is to end its turn where a held-out answer ends: p(<end_of_turn>).

For each row of a dataset version's held-out split (the service's prompt plus the rated answer),
the probability the model gives `<end_of_turn>` right after the answer's last token, with the
base model and with each adapter given. An adapter that has not learnt to stop scores near 0
and runs every answer to the token cap.

    python -m bench.end_of_turn --dataset var/datasets/v1 --adapter A [--adapter B ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch

from bench.train_step import rows
from service.config import Settings
from service.engines.chat_template import END_OF_TURN
from training.loss import AnswerLoss


def end_of_turn_probs(model: Any, batches: list[dict[str, torch.Tensor]], eot: int) -> list[float]:
    loss = AnswerLoss(eot)
    probs = []
    with torch.no_grad():
        for inputs in batches:
            prob = loss(model, inputs).end_of_turn_prob
            probs.append(prob if prob is not None else 0.0)
    return probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("var/datasets/v1"))
    parser.add_argument("--adapter", type=Path, action="append", default=[])
    parser.add_argument("--split", default="eval")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Settings().model.directory
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    eot: Any = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    split = args.dataset / "sft" / f"{args.split}.jsonl"
    batches = rows(args.dataset, len(split.read_text().splitlines()), tokenizer, args.split)
    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    results = {"base": end_of_turn_probs(base, batches, int(eot))}
    for adapter in args.adapter:
        tuned = PeftModel.from_pretrained(base, str(adapter)).eval()
        results[str(adapter)] = end_of_turn_probs(tuned, batches, int(eot))
        base = tuned.unload()  # the plain base model again, for the next adapter
    summary = {
        name: {
            "rows": len(p),
            "mean": round(statistics.fmean(p), 4),
            "median": round(statistics.median(p), 4),
            "share_over_0.5": round(sum(x > 0.5 for x in p) / len(p), 3),
        }
        for name, p in results.items()
    }
    if args.json:
        print(json.dumps({"dataset": str(args.dataset), "split": args.split} | summary))
        return
    print(f"p({END_OF_TURN}) after the last answer token, {args.dataset} {args.split} split")
    for name, s in summary.items():
        share = s["share_over_0.5"]
        print(f"{name:<50} mean {s['mean']:.4f}  median {s['median']:.4f}  >0.5: {share:.2f}")


if __name__ == "__main__":
    main()
