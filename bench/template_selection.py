"""Template-selection accuracy on labelled questions (any JSONL with question, product,
template_id). Usage: python -m bench.template_selection [FILE ...]"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from knowledge.catalog import load_products, load_templates
from knowledge.embedding import Embedder
from service.config import SAMPLE_KNOWLEDGE_DIR
from service.prompting.selection import TemplateSelector

EVAL = SAMPLE_KNOWLEDGE_DIR / "eval"
# Sets whose misses were looked at while the selector and templates were tuned (each was
# written before the change it measured, then became a development set).
DEVELOPMENT_SETS = [
    EVAL / "questions.jsonl",
    EVAL / "template_heldout.jsonl",
    EVAL / "template_fresh.jsonl",
    EVAL / "template_unseen.jsonl",
]
# Written after the last change and never tuned on: the honest figure for new phrasing.
HELD_OUT_SETS = [EVAL / "template_final.jsonl"]
DEFAULT_SETS = DEVELOPMENT_SETS + HELD_OUT_SETS


def accuracy(selector: TemplateSelector, path: Path) -> tuple[int, int, list[str]]:
    catalog = load_products(SAMPLE_KNOWLEDGE_DIR)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("type") != "handoff"]  # routed to a human before selection
    wrong = []
    for row in rows:
        product = row.get("product") or catalog.detect(row["question"])
        chosen = selector.select(row["question"], product)
        got = chosen.id if chosen else None
        if got != row["template_id"]:
            wrong.append(f"  {row['id']}: want {row['template_id']}, got {got}: {row['question']}")
    return len(rows) - len(wrong), len(rows), wrong


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or DEFAULT_SETS
    catalog = load_products(SAMPLE_KNOWLEDGE_DIR)
    selector = TemplateSelector(load_templates(SAMPLE_KNOWLEDGE_DIR, catalog), Embedder())
    all_right = all_total = 0
    for path in paths:
        right, total, wrong = accuracy(selector, path)
        all_right, all_total = all_right + right, all_total + total
        print(f"{path.name}: {right}/{total} = {right / total:.1%}")
        print("\n".join(wrong))
    print(f"overall: {all_right}/{all_total} = {all_right / all_total:.1%}")


if __name__ == "__main__":
    main()
