"""The evaluation's outputs: a terminal table, JSON, and a Markdown report with a PNG chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.evaluation.cases import AnswerCase
from training.evaluation.scoring import Scored, VariantScore

COLUMNS = [
    ("token F1", "token_f1", "{:.3f}"),
    ("ROUGE-L", "rouge_l", "{:.3f}"),
    ("citations", "citation_accuracy", "{:.2f}"),
    ("refusals", "refusal_rate", "{:.2f}"),
    ("false refusals", "false_refusal_rate", "{:.2f}"),
    ("echoes", "echo_rate", "{:.2f}"),
    ("ended", "ended_rate", "{:.2f}"),
    ("cut", "cut_rate", "{:.2f}"),
    ("leaks", "leak_rate", "{:.2f}"),
    ("median tok", "median_tokens", "{:.0f}"),
    ("TTFT s", "ttft_s", "{:.2f}"),
    ("prompt tok", "prompt_tokens", "{:.0f}"),
    ("answer tok", "completion_tokens", "{:.0f}"),
    ("by model", "model_answers", "{}"),
]
CHART_METRICS = [
    ("token F1", "token_f1"),
    ("ROUGE-L", "rouge_l"),
    ("citation accuracy", "citation_accuracy"),
    ("out-of-scope refused", "refusal_rate"),
]
REPORT_NAME = "evaluation"


@dataclass
class AnswerReport:
    """Everything one run of `tunedesk eval answers` found."""

    setup: dict[str, Any]
    variants: list[VariantScore]
    answers: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> str:
        data = {
            "setup": self.setup,
            "variants": [v.as_dict() for v in self.variants],
            "answers": self.answers,
        }
        return json.dumps(data, indent=2, ensure_ascii=False)

    def rows(self) -> list[list[str]]:
        return [
            [v.variant, *(_cell(v, key, fmt) for _, key, fmt in COLUMNS)] for v in self.variants
        ]

    def table(self) -> str:
        """Fixed-width columns for the terminal."""
        header = ["variant", *(title for title, _, _ in COLUMNS)]
        lines = [header, *self.rows()]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        return "\n".join(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
            for line in lines
        )

    def markdown_table(self) -> str:
        header = ["variant", *(title for title, _, _ in COLUMNS)]
        lines = [header, ["---", *("---:" for _ in COLUMNS)], *self.rows()]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _cell(score: VariantScore, key: str, fmt: str) -> str:
    value = getattr(score, key)
    return "n/a" if value is None else fmt.format(value)


def answer_rows(
    cases: Sequence[AnswerCase], scored: dict[str, list[Scored]]
) -> list[dict[str, Any]]:
    """Per question: the reference and every variant's answer with its scores."""
    rows = []
    for i, case in enumerate(cases):
        variants = {}
        for name, results in scored.items():
            s = results[i]
            variants[name] = asdict(s.answer) | {
                "token_f1": round(s.token_f1, 4),
                "rouge_l": round(s.rouge_l, 4),
                "refused": s.refused,
                "cites_gold": s.cites_gold,
            }
        rows.append(
            {
                "id": case.id,
                "kind": case.kind,
                "question": case.question,
                "reference": case.reference,
                "gold_sources": case.gold_sources,
                "variants": variants,
            }
        )
    return rows


def write_report(report: AnswerReport, directory: Path, examples: int = 3) -> list[Path]:
    """evaluation.md, evaluation.png and evaluation.json in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    chart = directory / f"{REPORT_NAME}.png"
    draw_chart(report.variants, chart)
    data = directory / f"{REPORT_NAME}.json"
    data.write_text(report.as_json() + "\n", encoding="utf-8")
    page = directory / f"{REPORT_NAME}.md"
    page.write_text(markdown(report, chart.name, examples), encoding="utf-8")
    return [page, chart, data]


def markdown(report: AnswerReport, chart_name: str, examples: int) -> str:
    setup = report.setup
    lines = [
        "# Answer evaluation: base, prompted, tuned, tuned+prompted",
        "",
        f"Set `{setup['set']}` ({setup['set_kind']}): {setup['questions']} questions "
        f"({', '.join(f'{n} {k}' for k, n in setup['kinds'].items())}). "
        f"Adapter: `{setup.get('adapter') or 'none'}`. Model `{setup['model']}`, "
        f"{setup.get('engine', 'local')} engine, {setup['weights']} weights, greedy, "
        f"at most {setup['max_new_tokens']} new tokens.",
        "",
        f"Command: `{setup['command']}`",
        "",
        report.markdown_table(),
        "",
        f"![four variants]({chart_name})",
        "",
        _kind_table(report.variants),
        "",
        *_definitions(),
        *_examples(report.answers, examples),
    ]
    return "\n".join(lines) + "\n"


def _kind_table(variants: Sequence[VariantScore]) -> str:
    kinds = sorted({k for v in variants for k in v.by_kind})
    lines = ["Token F1 / ROUGE-L by question kind:", ""]
    lines.append("| variant | " + " | ".join(kinds) + " |")
    lines.append("| --- |" + " ---: |" * len(kinds))
    for v in variants:
        cells = [
            f"{v.by_kind[k]['token_f1']:.3f} / {v.by_kind[k]['rouge_l']:.3f}"
            if k in v.by_kind
            else "n/a"
            for k in kinds
        ]
        lines.append(f"| {v.variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _definitions() -> list[str]:
    return [
        "- token F1: SQuAD-style word overlap with the reference (lower case, no punctuation, "
        "no articles, citation markers removed); ROUGE-L: `rouge-score`, F-measure, stemmed.",
        "- citations: share of answerable questions with gold sources whose answer cites at "
        "least one source and only gold ones (n/a where the prompt has no numbered sources).",
        "- refusals: out-of-scope questions declined; false refusals: in-scope questions "
        "declined (the brand's fixed replies or refusal wording).",
        "- echoes: answers that open by copying the prompt back (80 characters verbatim); an "
        "echo counts as neither a refusal, a hand-off offer nor a citation, whatever it repeats.",
        "- TTFT: question to first generated text, prompt-layer work included; tokens: means over "
        'answers the model wrote ("by model"; the rest were the service\'s fixed replies).',
        "",
    ]


def _examples(answers: Sequence[dict[str, Any]], count: int) -> list[str]:
    chosen = [a for a in answers if a["kind"] == "in_scope"][:count]
    lines = ["## Examples", ""] if chosen else []
    for row in chosen:
        lines += [
            f"**{row['id']}**: {row['question']}",
            "",
            f"- reference: {_short(row['reference'])}",
        ]
        for name, answer in row["variants"].items():
            lines.append(f"- {name} (F1 {answer['token_f1']:.2f}): {_short(answer['text'])}")
        lines.append("")
    return lines


def _short(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " …"


def draw_chart(variants: Sequence[VariantScore], path: Path) -> None:
    """Grouped bars: each quality metric per variant, and time to first token beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (quality, speed) = plt.subplots(
        1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]}
    )
    width = 0.8 / max(1, len(variants))
    for i, v in enumerate(variants):
        values = [getattr(v, key) or 0.0 for _, key in CHART_METRICS]
        offsets = [m + (i - (len(variants) - 1) / 2) * width for m in range(len(CHART_METRICS))]
        quality.bar(offsets, values, width, label=v.variant)
    quality.set_xticks(range(len(CHART_METRICS)), [title for title, _ in CHART_METRICS])
    quality.set_ylim(0, 1)
    quality.set_title("Answer quality (higher is better)")
    quality.legend(fontsize="small")
    speed.bar([v.variant for v in variants], [v.ttft_s or 0.0 for v in variants])
    speed.set_title("Time to first token, s")
    speed.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
