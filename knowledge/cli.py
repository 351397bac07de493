"""Knowledge-base commands: `tunedesk eval retrieval` and the body of `tunedesk ingest`.

Heavy imports (torch, qdrant-client) happen inside the commands, so `--help` stays instant.
Run on its own with `python -m knowledge.cli retrieval --set DIR`.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from knowledge.evaluation import EvalQuestion, RetrievalReport
    from knowledge.index import KnowledgeIndex, SearchSettings

eval_app = typer.Typer(help="Measure the knowledge base on eval sets.", no_args_is_help=True)


@eval_app.callback()
def _eval_group() -> None:
    """Measure the knowledge base on eval sets (folders of docs.jsonl + questions.jsonl)."""


def ingest(
    path: Path,
    *,
    product: str | None,
    prune: bool,
    qdrant_path: Path | None,
    qdrant_url: str | None,
    collection: str,
    max_size_mb: float = 64,
    store: str = "edge",
) -> None:
    """Ingest a file or folder with a progress bar; failures one line each, then a summary."""
    from knowledge.embedding import Embedder
    from knowledge.index import KnowledgeBaseBusy, open_index

    if not path.exists():
        typer.secho(f"{path} does not exist.", fg="red", err=True)
        raise typer.Exit(2)
    try:
        index = open_index(collection, Embedder(), store=store, path=qdrant_path, url=qdrant_url)
    except KnowledgeBaseBusy as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    try:
        ok = _ingest_into(index, path, product, prune, int(max_size_mb * 2**20))
    finally:
        index.close()
    if not ok:
        raise typer.Exit(1)


def _ingest_into(
    index: KnowledgeIndex,
    path: Path,
    product: str | None,
    prune: bool,
    max_bytes: int,
    summary_to_stderr: bool = False,
) -> bool:
    from tqdm import tqdm

    from knowledge.ingest import ingest as run_ingest

    started = time.perf_counter()
    report = run_ingest(
        index,
        path,
        product=product,
        prune=prune,
        max_bytes=max_bytes,
        progress=lambda docs: tqdm(docs, desc=f"ingesting {path.name}", unit="doc"),
    )
    for source, reason in report.failed:
        typer.secho(f"failed: {source}: {reason}", fg="yellow", err=True)
    elapsed = time.perf_counter() - started
    typer.echo(f"{report.summary()} in {elapsed:.1f} s", err=summary_to_stderr)
    return not (report.failed and not (report.added or report.updated or report.unchanged))


@eval_app.command("retrieval")
def eval_retrieval(
    set_dir: Annotated[
        Path, typer.Option("--set", help="Eval-set folder: docs.jsonl and questions.jsonl.")
    ],
    extra_docs: Annotated[
        list[Path] | None,
        typer.Option(help="More documents to index beside the set (repeatable): distractors."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    history: Annotated[
        bool, typer.Option(help="Search with each question's conversation history.")
    ] = True,
    product_filter: Annotated[
        bool, typer.Option(help="Keep each search to the question's product.")
    ] = True,
    fusion: Annotated[
        str, typer.Option(help="dbsf, rrf, or dense / sparse alone (for comparison).")
    ] = "dbsf",
    sparse_weight: Annotated[int, typer.Option(help="Times the lexical list counts.")] = 1,
    limit: Annotated[int | None, typer.Option(help="Ask only the first N questions.")] = None,
    index_dir: Annotated[
        Path | None,
        typer.Option(help="Keep the index in this folder and reuse it (default: throw-away)."),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads for the embedder.")] = None,
    store: Annotated[
        str, typer.Option(help="Embedded vector store: edge (Qdrant Edge) or local (local mode).")
    ] = "edge",
) -> None:
    """Index an eval set into a throw-away collection, ask every question, print hit@k and MRR."""
    from knowledge.evaluation import doc_folders, load_questions
    from knowledge.index import SearchSettings

    try:
        questions = load_questions(set_dir)[:limit]
        paths = doc_folders(set_dir, extra_docs or [])
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as exc:
        typer.secho(f"Retrieval evaluation not started: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    if threads:
        import torch

        torch.set_num_threads(threads)
    settings = SearchSettings(fusion=fusion, sparse_weight=sparse_weight)
    with tempfile.TemporaryDirectory(prefix="tunedesk-eval-") as scratch:
        report = _run_eval(
            index_dir or Path(scratch),
            store,
            paths,
            questions,
            settings,
            history=history,
            product_filter=product_filter,
        )
    report.setup["set"] = str(set_dir)
    report.setup["extra_docs"] = [str(p) for p in extra_docs or []]
    typer.echo(report.as_json() if as_json else report.table())


def _run_eval(
    folder: Path,
    store: str,
    paths: list[Path],
    questions: list[EvalQuestion],
    settings: SearchSettings,
    *,
    history: bool,
    product_filter: bool,
) -> RetrievalReport:
    from tqdm import tqdm

    from knowledge.embedding import Embedder
    from knowledge.evaluation import evaluate
    from knowledge.index import open_index

    index = open_index("eval", Embedder(), store=store, path=folder, settings=settings)
    try:
        started = time.perf_counter()
        for path in paths:
            _ingest_into(index, path, None, False, 2**40, summary_to_stderr=True)
        indexing = time.perf_counter() - started
        index.search("warm-up query")  # the first call pays one-off costs, not query latency
        report = evaluate(
            index,
            questions,
            use_history=history,
            product_filter=product_filter,
            progress=lambda qs: tqdm(qs, desc="asking", unit="question", leave=False),
        )
        report.setup.update(
            chunks=index.count(),
            index_seconds=round(indexing, 1),
            history=history,
            product_filter=product_filter,
            store=store,
            **asdict(settings),
        )
    finally:
        index.close()
    return report


if __name__ == "__main__":
    eval_app()
