"""The `tunedesk` command. Heavy imports happen inside each command, so --help is instant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.console.cli import agents_app
from service.tenants.cli import keys_app, tenants_app

app = typer.Typer(help="tunedesk: a self-hosted customer-support chatbot.", no_args_is_help=True)
model_app = typer.Typer(help="Prepare and inspect the base model.", no_args_is_help=True)
engine_app = typer.Typer(help="Run the LLM engine as its own server.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(engine_app, name="engine")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(agents_app, name="agents")


def _add_plugin_commands() -> None:
    """Commands other packages register (training's `dataset` and `train`), without importing
    them here: the service never depends on the training package."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="tunedesk.commands"):
        app.add_typer(entry.load(), name=entry.name)


_add_plugin_commands()


def _settings():  # type: ignore[no-untyped-def]
    from service.config import Settings

    return Settings()


@model_app.command("prepare")
def model_prepare(
    force: Annotated[bool, typer.Option(help="Convert again even if already prepared.")] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            help="openvino: also export for the OpenVINO engine (builds its export environment "
            "once) and compare it with the reference. Default: the configured engine kind."
        ),
    ] = None,
    verify_adapter: Annotated[
        Path | None,
        typer.Option(help="LoRA adapter the OpenVINO check also compares (default: the demo's)."),
    ] = None,
) -> None:
    """Convert the packaged Gemma 3 270M GGUF into the model cache (no download, ever)."""
    from service.engines.artifacts import prepare_model

    settings = _settings()
    try:
        prepare_model(settings.model.directory, report=typer.echo, force=force)
        if (engine or settings.engine.kind) == "openvino":
            _export_openvino(settings, force, verify_adapter)
    except Exception as exc:
        typer.secho(f"Model preparation failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc


def _export_openvino(settings, force: bool, adapter: Path | None) -> None:  # type: ignore[no-untyped-def]
    from service.config import SAMPLE_KNOWLEDGE_DIR
    from service.engines.openvino_prepare import export_openvino

    demo = SAMPLE_KNOWLEDGE_DIR / "adapters" / "sample-sft-2"  # trained on this base model
    if adapter is None and demo.is_dir() and settings.model.path is None:
        adapter = demo
    export_openvino(
        settings.model.directory,
        report=typer.echo,
        weights=settings.engine.weights,
        force=force,
        verify_adapter=adapter,
    )


@model_app.command("info")
def model_info() -> None:
    """Show where the model lives and whether it is prepared."""
    import json

    from service.engines.artifacts import read_manifest

    directory = _settings().model.directory
    manifest = read_manifest(directory)
    typer.echo(f"model directory: {directory}")
    typer.echo(json.dumps(manifest, indent=2) if manifest else "not prepared")
    if manifest is None:
        raise typer.Exit(1)


@app.command()
def ingest(
    path: Annotated[
        Path, typer.Argument(help="A file or folder: Markdown, HTML, PDF, text, docs.jsonl.")
    ],
    product: Annotated[
        str | None, typer.Option(help="Product id for documents that do not name one.")
    ] = None,
    prune: Annotated[
        bool, typer.Option(help="Delete indexed sources from this folder that no longer exist.")
    ] = False,
    max_size_mb: Annotated[float, typer.Option(help="Refuse files larger than this.")] = 64,
) -> None:
    """Chunk, embed and index documents into the knowledge base (Qdrant), incrementally."""
    from knowledge.cli import ingest as run_ingest

    knowledge = _settings().knowledge
    run_ingest(
        path,
        product=product,
        prune=prune,
        qdrant_path=knowledge.qdrant_path,
        qdrant_url=knowledge.qdrant_url,
        collection=knowledge.collection,
        store=knowledge.store,
        max_size_mb=max_size_mb,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Run the API, the demo page and /metrics."""
    import uvicorn

    from service.app import create_app
    from service.engines.artifacts import read_manifest

    settings = _settings()
    if settings.engine.kind == "local" and read_manifest(settings.model.directory) is None:
        typer.secho(
            f"No prepared model in {settings.model.directory}: run `tunedesk model prepare`.",
            fg="red",
            err=True,
        )
        raise typer.Exit(1)
    host, port = host or settings.host, port or settings.port
    typer.echo(f"tunedesk on http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@engine_app.command("serve")
def engine_serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8001,
    engine: Annotated[
        str | None,
        typer.Option(
            help="local (transformers) or openvino (continuous batching). Default: the "
            "configured engine kind, local when that is vllm."
        ),
    ] = None,
) -> None:
    """Serve a CPU engine through the OpenAI-compatible routes vLLM serves (adapters too)."""
    import uvicorn

    from service.app import build_local_engine, build_openvino_engine
    from service.engines.openai_api.server import create_engine_app

    settings = _settings()
    kind = engine or settings.engine.kind
    if kind not in ("local", "openvino", "vllm"):
        typer.secho(f"Unknown engine {kind!r}: use local or openvino.", fg="red", err=True)
        raise typer.Exit(2)
    name = settings.engine.served_model_name or settings.model.name
    typer.echo(f"engine {name!r} ({kind}) on http://{host}:{port}/v1 (OpenAI-compatible)")
    build = build_openvino_engine if kind == "openvino" else build_local_engine
    app_ = create_engine_app(build(settings), name)
    uvicorn.run(app_, host=host, port=port, log_level="info")


if __name__ == "__main__":
    app()
