"""Answer hygiene on the demo adapter's saved answers: what is cut, by which rule, what is
replaced as a leak, and token F1 before and after.

    python -m bench.answer_hygiene [--variant tuned+prompted] [--chunk 4] [--show RULE]

Each answer is streamed through the guard in `--chunk`-character deltas, as an engine would.
The prompt of each answer is not saved: the docs of the answer's product (from its gold
sources) stand in for the sources it was given.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from knowledge.catalog import load_system_prompt
from service.chat.hygiene import AnswerGuard, Cleaned, Hygiene
from service.config import SAMPLE_KNOWLEDGE_DIR
from training.evaluation.metrics import token_f1

EVALUATION = SAMPLE_KNOWLEDGE_DIR / "adapters" / "sample-sft-1" / "evaluation.json"


def product_of(case: dict[str, Any]) -> str | None:
    gold: list[str] = case.get("gold_sources") or []
    return str(gold[0]).split("/")[1] if gold else None  # docs/<product>/page.md


def docs_text(product: str | None) -> str:
    folder = SAMPLE_KNOWLEDGE_DIR / "docs" / (product or "")
    return " ".join(p.read_text(encoding="utf-8") for p in folder.glob("*.md")) if product else ""


def streamed(guard: AnswerGuard, text: str, chunk: int) -> tuple[Cleaned, bool]:
    for start in range(0, len(text), chunk):
        guard.feed(text[start : start + chunk])
        if guard.verdict is not None:
            break  # the service closes the engine stream here
    guard.finish()
    return guard.result(), guard.retracted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="tuned+prompted")
    parser.add_argument("--chunk", type=int, default=4, help="characters per streamed delta")
    parser.add_argument("--show", default=None, help="print the answers one rule cut")
    args = parser.parse_args()
    system = load_system_prompt(SAMPLE_KNOWLEDGE_DIR)
    hygiene = Hygiene(system)
    cases = json.loads(Path(EVALUATION).read_text(encoding="utf-8"))["answers"]
    rules: Counter[str] = Counter()
    before: list[float] = []
    after: list[float] = []
    fixed: list[float] = []  # the brand's fixed replies (hand-offs, refusals): no hygiene
    model_answers = replaced = retracted = 0
    for case in cases:
        answer = case["variants"].get(args.variant)
        if answer is None or answer["outcome"] != "model":
            fixed += [token_f1(answer["text"], case["reference"])] if answer else []
            continue
        model_answers += 1
        product = product_of(case)
        guard = hygiene.guard([docs_text(product)], case["question"])
        cleaned, took_back = streamed(guard, answer["text"], args.chunk)
        before.append(token_f1(answer["text"], case["reference"]))
        after.append(token_f1(cleaned.text, case["reference"]))
        if cleaned.verdict is not None:
            rules[f"{cleaned.verdict.reason}/{cleaned.verdict.rule}"] += 1
            replaced += cleaned.replaced
            retracted += took_back
            if args.show and args.show in cleaned.verdict.rule:
                print(f"--- {case['id']} {cleaned.verdict}\n{answer['text']}\n>>> {cleaned.text}\n")
    _report(args.variant, model_answers, rules, replaced, retracted, before, after)
    everything = len(before) + len(fixed)
    mean_before = (sum(before) + sum(fixed)) / everything
    mean_after = (sum(after) + sum(fixed)) / everything
    print(f"token F1 of all {everything} answers: {mean_before:.3f} before, {mean_after:.3f} after")


def _report(
    variant: str,
    answers: int,
    rules: Counter[str],
    replaced: int,
    retracted: int,
    before: list[float],
    after: list[float],
) -> None:
    cut = sum(rules.values())
    print(f"variant {variant}: {answers} model answers, {cut} judged ({answers - cut} untouched)")
    for rule, count in rules.most_common():
        print(f"  {rule:36} {count}")
    print(f"replaced by the low-confidence reply: {replaced}")
    print(f"text already streamed that the final event replaces: {retracted}")
    mean = sum(before) / len(before) if before else 0.0
    mean_after = sum(after) / len(after) if after else 0.0
    print(f"token F1 of the model answers: {mean:.3f} before, {mean_after:.3f} after")


if __name__ == "__main__":
    main()
