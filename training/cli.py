"""`tunedesk dataset|train|eval ...`, registered as plugins of the `tunedesk` command.

The service finds these Typer apps through the `tunedesk.commands` entry-point group, so it
never imports this package. Heavy imports happen inside each command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from knowledge.cli import eval_retrieval
from training.export_cli import dataset_export

dataset_app = typer.Typer(
    help="Build training datasets from rated transcripts.", no_args_is_help=True
)
train_app = typer.Typer(help="Train LoRA adapters (SFT, DPO) on a dataset.", no_args_is_help=True)
# `tunedesk eval`: knowledge's retrieval evaluation, joined here by the answer evaluation
eval_app = typer.Typer(help="Measure retrieval and answers on eval sets.", no_args_is_help=True)
eval_app.command("retrieval")(eval_retrieval)
dataset_app.command("export")(dataset_export)


OutOption = Annotated[
    Path | None, typer.Option(help="Datasets folder; a new v<N> is written inside.")
]
CatalogOption = Annotated[
    Path | None, typer.Option(help="Folder with products.yaml, troubleshooting/, prompts/.")
]


MixSetOption = Annotated[
    Path | None,
    typer.Option(
        help="A public grounded dialogue set (eval-set folder, e.g. ../shared/data/evalsets/"
        "doc2dial) to mix in; only turns about its train half of documents are used."
    ),
]
MixAttributionOption = Annotated[
    str, typer.Option(help="The mixed-in set's source and licence, kept with every example.")
]
MixMaxOption = Annotated[int, typer.Option(min=1, help="At most this many mixed-in examples.")]
MixHeldOutOption = Annotated[
    float, typer.Option(min=0.1, max=0.9, help="Share of the set's documents never trained on.")
]


def _check_attribution(mix_set: Path | None, attribution: str) -> None:
    if mix_set is not None and not attribution.strip():
        raise _fail(
            "--mix-set needs --mix-attribution: name the set's source and licence (e.g. "
            '"doc2dial (Feng et al., EMNLP 2020), CC-BY-3.0"); it is kept with every example.',
            2,
        )


def _mixed_in(
    settings: Any,
    mix_set: Path | None,
    attribution: str,
    max_examples: int,
    held_out: float,
    seed: int,
) -> tuple[list[Any], dict[str, Any]]:
    """The public set's transcripts and the manifest's record of it (none without --mix-set)."""
    if mix_set is None:
        return [], {}
    from training.public_sets import PublicSetOptions, public_set_transcripts

    options = PublicSetOptions(mix_set, attribution, max_examples, held_out, seed=seed)
    made = public_set_transcripts(options, settings)
    typer.echo(
        f"mixed in {len(made.transcripts)} from {mix_set}: {dict(sorted(made.counts.items()))}"
    )
    return made.transcripts, {"public_sets": [made.provenance(options)]}


def _settings() -> Any:
    from service.config import Settings

    return Settings()


def _missing_extra(exc: ModuleNotFoundError) -> typer.Exit:
    return _fail(f"{exc.name} is not installed: pip install 'tunedesk[train]' (the train extra).")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg="red", err=True)
    return typer.Exit(code)


@dataset_app.command("build")
def dataset_build(
    transcripts: Annotated[
        Path | None,
        typer.Option(help="Rated transcripts JSONL (docs/training.md); default: the database."),
    ] = None,
    out: OutOption = None,
    docs: Annotated[
        Path | None,
        typer.Option(
            help="Rebuild sources from this documents folder instead of the knowledge base."
        ),
    ] = None,
    catalog: CatalogOption = None,
    eval_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Conversations held out.")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the train/eval split.")] = 0,
    approximate: Annotated[
        bool, typer.Option(help="Keep answers whose prompt could only be rebuilt approximately.")
    ] = True,
    customer_ratings: Annotated[
        bool, typer.Option(help="Count customers' ratings (agents' always count).")
    ] = True,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="Distil: an OpenAI-compatible base URL (e.g. http://gpu:8001/v1) whose model "
            "answers the prompts that have no good answer (unrated, or bad and uncorrected)."
        ),
    ] = None,
    teacher_model: Annotated[
        str | None, typer.Option(help="The teacher's model name (default: the first it lists).")
    ] = None,
    teacher_api_key: Annotated[
        str, typer.Option(envvar="TUNEDESK_TEACHER_API_KEY", help="Bearer key of the teacher.")
    ] = "EMPTY",
    teacher_max_tokens: Annotated[
        int, typer.Option(min=16, help="Longest teacher answer; a cut-off one is not used.")
    ] = 512,
    mix_set: MixSetOption = None,
    mix_attribution: MixAttributionOption = "",
    mix_max: MixMaxOption = 120,
    mix_held_out: MixHeldOutOption = 0.5,
) -> None:
    """Rated transcripts → a new dataset version (SFT examples and preference pairs).

    Personal data is scrubbed, duplicates removed, and conversations split into train and eval;
    the manifest records counts, rating ids, file hashes and the filters used.
    """
    from itertools import chain

    from knowledge.catalog import CatalogError
    from knowledge.index import KnowledgeBaseBusy
    from training.dataset import BuildOptions, build_dataset
    from training.examples import RatingPolicy
    from training.inputs import chunk_lookup, prompt_rebuilder, transcripts_from
    from training.public_sets import PublicSetError
    from training.teacher import TeacherError, TeacherSettings
    from training.transcripts import TranscriptError

    settings = _settings()
    for path in (transcripts, mix_set):
        if path is not None and not path.exists():
            raise _fail(f"{path} does not exist.", 2)
    _check_attribution(mix_set, mix_attribution)
    raters = ("customer", "agent") if customer_ratings else ("agent",)
    options = BuildOptions(eval_fraction, seed, approximate, RatingPolicy(raters=raters))
    try:
        with chunk_lookup(docs, settings) as (chunks, chunks_from):
            rebuilder, knowledge = prompt_rebuilder(
                catalog or settings.knowledge.catalog_dir, chunks, settings
            )
            rows, source = transcripts_from(transcripts, settings)
            mixed, mixed_from = _mixed_in(
                settings, mix_set, mix_attribution, mix_max, mix_held_out, seed
            )
            provenance = source | mixed_from | {"knowledge": knowledge | {"chunks": chunks_from}}
            result = build_dataset(
                chain(rows, mixed),
                rebuilder,
                out or settings.data_dir / "datasets",
                options,
                provenance,
                TeacherSettings(teacher, teacher_model, teacher_api_key, teacher_max_tokens)
                if teacher
                else None,
            )
    except ModuleNotFoundError as exc:
        raise _missing_extra(exc) from exc
    except (
        TranscriptError,
        CatalogError,
        KnowledgeBaseBusy,
        TeacherError,
        PublicSetError,
        ValueError,
        OSError,
    ) as exc:
        raise _fail(f"Dataset build failed: {exc}") from exc
    _report_build(result.manifest, result.directory, result.created)


@dataset_app.command("synth")
def dataset_synth(
    docs: Annotated[
        Path, typer.Option(help="The product documents to draft questions from (as ingested).")
    ],
    transcripts: Annotated[
        Path | None, typer.Option(help="Rated transcripts JSONL to add on top (docs/training.md).")
    ] = None,
    out: OutOption = None,
    catalog: CatalogOption = None,
    max_per_kind: Annotated[
        int | None,
        typer.Option(min=1, help="At most this many questions of a kind per product."),
    ] = None,
    unanswerable_share: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of questions the sources can't answer.")
    ] = 0.15,
    eval_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Conversations held out.")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the draft choice and the split.")] = 0,
    save_transcripts: Annotated[
        Path | None, typer.Option(help="Also write the synthesized transcripts to this JSONL.")
    ] = None,
    mix_set: MixSetOption = None,
    mix_attribution: MixAttributionOption = "",
    mix_max: MixMaxOption = 120,
    mix_held_out: MixHeldOutOption = 0.5,
) -> None:
    """Grounded question → answer examples from documents alone, for a team with no ratings yet.

    Questions come from headings, numbered steps, error-code and specification tables; answers
    condense the source and cite it as the service's prompt numbers it. Rated transcripts
    (--transcripts) are added on top. Written, scrubbed and versioned like `dataset build`.
    """
    from itertools import chain

    from knowledge.catalog import CatalogError
    from knowledge.index import KnowledgeBaseBusy
    from training.dataset import BuildOptions, build_dataset
    from training.examples import RatingPolicy
    from training.inputs import chunk_lookup, prompt_rebuilder, transcripts_from
    from training.synth.build import SynthOptions, synthesize
    from training.transcripts import TranscriptError, write_transcripts

    settings = _settings()
    if catalog is not None:
        settings.knowledge.catalog_dir = catalog
    checked = [(docs, "documents folder"), (transcripts, "transcripts file"), (mix_set, "eval set")]
    for path, what in checked:
        if path is not None and not path.exists():
            raise _fail(f"{path} does not exist: pass an existing {what}.", 2)
    _check_attribution(mix_set, mix_attribution)
    try:
        made = synthesize(docs, settings, SynthOptions(max_per_kind, unanswerable_share, seed))
        typer.echo(f"synthesized {len(made.transcripts)}: {dict(sorted(made.counts.items()))}")
        if save_transcripts is not None:
            write_transcripts(save_transcripts, made.transcripts)
        rated, source = (
            (iter(()), {}) if transcripts is None else transcripts_from(transcripts, settings)
        )
        mixed, mixed_from = _mixed_in(
            settings, mix_set, mix_attribution, mix_max, mix_held_out, seed
        )
        with chunk_lookup(docs, settings) as (chunks, chunks_from):
            rebuilder, knowledge = prompt_rebuilder(
                settings.knowledge.catalog_dir, chunks, settings
            )
            provenance = {
                "kind": "synth",
                "docs": str(docs),
                "synth": {"transcripts": len(made.transcripts), "drafts": dict(made.counts)},
                "rated": source or None,
                "knowledge": knowledge | {"chunks": chunks_from},
            } | mixed_from
            result = build_dataset(
                chain(made.transcripts, rated, mixed),
                rebuilder,
                out or settings.data_dir / "datasets",
                BuildOptions(eval_fraction, seed, True, RatingPolicy()),
                provenance,
            )
    except ModuleNotFoundError as exc:
        raise _missing_extra(exc) from exc
    except (TranscriptError, CatalogError, KnowledgeBaseBusy, ValueError, OSError) as exc:
        raise _fail(f"Dataset synth failed: {exc}") from exc
    _report_build(result.manifest, result.directory, result.created)


def _report_build(manifest: dict[str, Any], directory: Path, created: bool) -> None:
    counts = manifest["counts"]
    if not created:
        typer.echo(f"Nothing changed since {directory.name}: no new version written.")
    typer.echo(
        f"{directory}: SFT {counts['sft']['train']} train / {counts['sft']['eval']} eval, "
        f"preference pairs {counts['dpo']['train']} train / {counts['dpo']['eval']} eval, "
        f"from {manifest['source']['rated_answers']} rated answers in "
        f"{manifest['source']['transcripts']} conversations."
    )
    typer.echo(f"prompts: {counts['prompts']}; skipped answers: {counts['skipped_answers']}")
    typer.echo(f"personal data replaced: {counts['pii_replaced']}; removed: {counts['removed']}")
    if "teacher" in manifest:
        teacher = manifest["teacher"]
        typer.echo(
            f"teacher {teacher['model']} at {teacher['url']}: {teacher['prompts']} prompts, "
            f"{teacher['counts']}"
        )
    if counts["sft"]["train"] == 0:
        raise _fail("The dataset has no SFT training examples.")


ConfigOption = Annotated[
    Path | None, typer.Option(help="Training YAML (default: training/configs/<kind>.yaml).")
]
DatasetOption = Annotated[
    Path | None, typer.Option(help="Dataset version folder from `tunedesk dataset build`.")
]
ModelOption = Annotated[
    Path | None, typer.Option(help="Base model folder (default: the prepared model).")
]
OutputOption = Annotated[Path | None, typer.Option(help="Where checkpoints and the adapter go.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value: trainer.learning_rate=1e-4 (repeatable)."),
]
StepsOption = Annotated[int | None, typer.Option(help="Stop after this many optimiser steps.")]
ResumeOption = Annotated[bool, typer.Option(help="Continue from the newest checkpoint.")]


@train_app.command("sft")
def train_sft(
    config: ConfigOption = None,
    dataset: DatasetOption = None,
    model: ModelOption = None,
    output_dir: OutputOption = None,
    max_steps: StepsOption = None,
    overrides: SetOption = None,
    resume: ResumeOption = False,
    init_adapter: Annotated[
        Path | None, typer.Option(help="An adapter to train further instead of a fresh LoRA.")
    ] = None,
) -> None:
    """Supervised fine-tuning of a LoRA adapter (TRL SFTTrainer + PEFT) on a dataset's SFT part.

    Several GPUs: `accelerate launch -m training.cli train sft ...`.
    """
    from training.sft import run_sft

    extra = [*(overrides or []), *([f"init_adapter={init_adapter}"] if init_adapter else [])]
    _train("sft", run_sft, config, dataset, model, output_dir, max_steps, extra, resume)


@train_app.command("dpo")
def train_dpo(
    config: ConfigOption = None,
    dataset: DatasetOption = None,
    model: ModelOption = None,
    output_dir: OutputOption = None,
    max_steps: StepsOption = None,
    overrides: SetOption = None,
    resume: ResumeOption = False,
    init_adapter: Annotated[
        Path | None, typer.Option(help="SFT adapter to continue; it is also the reference.")
    ] = None,
) -> None:
    """Preference tuning (TRL DPOTrainer + PEFT) on a dataset's preference pairs.

    Best started from an SFT adapter (--init-adapter), which is then also the reference model.
    """
    from training.dpo import run_dpo

    extra = [*(overrides or []), *([f"init_adapter={init_adapter}"] if init_adapter else [])]
    _train("dpo", run_dpo, config, dataset, model, output_dir, max_steps, extra, resume)


def _train(
    kind: str,
    run: Any,
    config: Path | None,
    dataset: Path | None,
    model: Path | None,
    output_dir: Path | None,
    max_steps: int | None,
    overrides: list[str] | None,
    resume: bool,
) -> None:
    from training.config import CONFIG_DIR, ConfigError, load_job

    extra = list(overrides or [])
    extra += [f"dataset={dataset}"] if dataset else []
    extra += [f"output_dir={output_dir}"] if output_dir else []
    extra += [f"trainer.max_steps={max_steps}"] if max_steps is not None else []
    try:
        job = load_job(config or CONFIG_DIR / f"{kind}.yaml", extra)
        job.split = kind
        base = model or job.model or _settings().model.directory
        run(job, base, resume, typer.echo)
    except ModuleNotFoundError as exc:
        raise _missing_extra(exc) from exc
    except ConfigError as exc:
        raise _fail(f"Training not started: {exc}", 2) from exc


@eval_app.command("answers")
def eval_answers(
    set_dir: Annotated[
        Path,
        typer.Option(
            "--set",
            help="Eval-set folder (questions.jsonl with answers, docs.jsonl) or a dataset "
            "version folder (its held-out sft/eval.jsonl).",
        ),
    ],
    variants: Annotated[
        str, typer.Option(help="Comma-separated: base, prompted, tuned, tuned+prompted.")
    ] = "base,prompted,tuned,tuned+prompted",
    adapter: Annotated[
        str | None,
        typer.Option(help="Adapter for the tuned variants: a folder, or a name in adapters_dir."),
    ] = None,
    extra_docs: Annotated[
        list[Path] | None,
        typer.Option(help="More documents to index beside the set's docs.jsonl (repeatable)."),
    ] = None,
    examples: Annotated[
        Path | None,
        typer.Option(help="Dataset version whose train split seeds the few-shot examples."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Ask only the first N questions.")] = None,
    sample: Annotated[
        int | None,
        typer.Option(help="Ask about N questions drawn at random, each kind in its share."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --sample.")] = 0,
    exclude_seen: Annotated[
        Path | None,
        typer.Option(help="Leave out questions asked word for word in this dataset's train split."),
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Answer length cap (default: engine.max_new_tokens).")
    ] = None,
    guardrails: Annotated[
        bool, typer.Option(help="Prompted variants hand off and refuse as the service does.")
    ] = True,
    hygiene: Annotated[
        bool,
        typer.Option(help="Model answers go through the service's answer hygiene (cuts, leaks)."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    report: Annotated[
        Path | None,
        typer.Option(help="Write evaluation.md, evaluation.png and evaluation.json here."),
    ] = None,
) -> None:
    """Compare base, prompted, tuned and tuned+prompted answers on an eval set.

    Token F1 and ROUGE-L against the reference answers, citation accuracy, refusals of
    out-of-scope questions, time to first token and tokens, on the local CPU engine.
    """
    import sys

    from tqdm import tqdm

    from training.evaluation.cases import EvalSetError, load_cases
    from training.evaluation.report import write_report
    from training.evaluation.run import AdapterMissing, AnswerEvalOptions, evaluate_answers
    from training.evaluation.variants import parse_variants

    settings = _settings()
    try:
        options = AnswerEvalOptions(
            variants=parse_variants(variants),
            adapter=adapter,
            extra_docs=list(extra_docs or []),
            examples=examples,
            max_new_tokens=max_new_tokens or settings.engine.max_new_tokens,
            guardrails=guardrails,
            hygiene=hygiene,
            command="tunedesk eval answers " + " ".join(sys.argv[sys.argv.index("answers") + 1 :])
            if "answers" in sys.argv
            else "",
        )
        _scoring_ready(with_chart=report is not None)
        cases = load_cases(set_dir, limit, sample, seed, exclude_seen)
        result = evaluate_answers(
            cases,
            options,
            settings,
            progress=lambda qs, name: tqdm(qs, desc=name, unit="question", file=sys.stderr),
            report=lambda line: typer.echo(line, err=True),
        )
    except ModuleNotFoundError as exc:
        raise _missing_extra(exc) from exc
    except (EvalSetError, AdapterMissing, FileNotFoundError) as exc:
        raise _fail(f"Answer evaluation not started: {exc}", 2) from exc
    except ValueError as exc:
        raise _fail(f"Answer evaluation failed: {exc}", 2) from exc
    typer.echo(result.as_json() if as_json else result.table())
    for path in write_report(result, report) if report else []:
        typer.echo(f"wrote {path}", err=True)


def _scoring_ready(with_chart: bool) -> None:
    """Fail before an hour of generation, not after it, when a scoring package is missing."""
    from training.evaluation.metrics import rouge_l

    rouge_l("ready", "ready")
    if with_chart:
        import matplotlib  # noqa: F401


main = typer.Typer(help="tunedesk training commands (also available as `tunedesk dataset|train`).")
main.add_typer(dataset_app, name="dataset")
main.add_typer(train_app, name="train")
main.add_typer(eval_app, name="eval")

if __name__ == "__main__":
    main()
