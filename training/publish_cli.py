"""`tunedesk publish ADAPTER_DIR`, registered as a plugin of the `tunedesk` command.

The entry point names a Typer app; this one is a single command whose options may follow the
argument (`tunedesk publish out/adapter --activate`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from service.errors import TunedeskError


class _SingleCommand(TyperGroup):
    """A group that is really one command: options anywhere, no COMMAND in its usage."""

    allow_interspersed_args = True

    def collect_usage_pieces(self, ctx: Any) -> list[str]:  # typer vendors click
        return [p for p in super().collect_usage_pieces(ctx) if "COMMAND" not in p]


publish_app = typer.Typer(
    cls=_SingleCommand,
    no_args_is_help=True,
    short_help="Gate an adapter against the active version, then register and ship it.",
)


@publish_app.callback(invoke_without_command=True)
def publish(
    adapter_dir: Annotated[Path, typer.Argument(help="The trained LoRA adapter folder.")],
    name: Annotated[
        str | None, typer.Option(help="Version name (default: the adapter folder's name).")
    ] = None,
    set_dir: Annotated[
        Path | None,
        typer.Option(
            "--set",
            help="Held-out eval set or dataset version (default: the newest dataset version).",
        ),
    ] = None,
    margin: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="How much worse any quality metric may be.")
    ] = 0.02,
    ttft_margin: Annotated[
        float | None,
        typer.Option(min=0.0, help="How much slower the first token may be, relatively."),
    ] = 0.5,
    canary: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Then let this share of conversations use it."),
    ] = None,
    activate: Annotated[bool, typer.Option(help="Then make it answer every conversation.")] = False,
    candidate_eval: Annotated[
        Path | None, typer.Option(help="Use this evaluation JSON for the candidate.")
    ] = None,
    active_eval: Annotated[
        Path | None, typer.Option(help="Use this evaluation JSON for the active version.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Ask only the first N questions.")] = None,
    url: Annotated[
        str | None, typer.Option(help="The service's base URL (default: http://HOST:PORT).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="TUNEDESK_API_KEY",
            help="A tenant key with the admin scope (default: the operator key).",
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant id the operator key acts for.")] = None,
    offline: Annotated[
        bool,
        typer.Option(
            help="Write the registry in the database, for a service that is not running yet "
            "(it loads the adapter when it starts)."
        ),
    ] = False,
    skip_existing: Annotated[
        bool, typer.Option(help="A version of this name exists already: say so, exit 0.")
    ] = False,
) -> None:
    """Evaluate an adapter against the active version; register it only if no metric is worse
    by more than the margin, then optionally canary or activate it. No restart needed.

    The comparison is saved under <data_dir>/publish/ and in the version's `evaluation`.
    """
    from service.config import Settings
    from training.publish import PublishError, PublishOptions
    from training.publish import publish as run_publish

    if canary and activate:
        raise _fail("Choose --canary or --activate, not both.", 2)
    settings = Settings()
    options = PublishOptions(
        adapter_dir=adapter_dir,
        name=name or adapter_dir.resolve().name,
        set_dir=set_dir or _newest_dataset(settings),
        margin=margin,
        ttft_margin=ttft_margin,
        canary=canary,
        activate=activate,
        candidate_eval=candidate_eval,
        active_eval=active_eval,
    )
    with _registry(settings, offline, url, api_key, tenant) as client:
        if skip_existing and any(v["name"] == options.name for v in client.versions()["data"]):
            typer.echo(f"{options.name} is already registered; nothing to publish.")
            return
        try:
            result = run_publish(options, client, settings, _evaluator(settings, limit))
        except ModuleNotFoundError as exc:
            raise _fail(f"{exc.name} is not installed: pip install 'tunedesk[train]'.") from exc
        except (PublishError, ValueError, FileNotFoundError) as exc:
            raise _fail(f"Not published: {exc}") from exc
        except TunedeskError as exc:  # the offline registry refused it
            raise _fail(f"Not published: {exc.message}") from exc
    _report(result)


@contextmanager
def _registry(
    settings: Any, offline: bool, url: str | None, api_key: str | None, tenant: str | None
) -> Iterator[Any]:
    """The running service's /v1/models API, or with --offline the database itself."""
    if not offline:
        from service.versions.cli import models_client

        with models_client(url, api_key, tenant) as client:
            yield client
        return
    if url or api_key:
        raise _fail("--offline writes the database directly: leave out --url and --api-key.", 2)
    from service.store.models import DEFAULT_TENANT_ID
    from service.versions.offline import OfflineRegistry

    yield OfflineRegistry.open(settings, tenant or DEFAULT_TENANT_ID)


def _newest_dataset(settings: Any) -> Path | None:
    from training.dataset import latest_version

    return latest_version(settings.data_dir / "datasets")


def _evaluator(settings: Any, limit: int | None) -> Any:
    import sys

    from tqdm import tqdm

    from training.publish import run_answer_eval

    return run_answer_eval(
        settings,
        limit,
        progress=lambda qs, name: tqdm(qs, desc=name, unit="question", file=sys.stderr),
        report=lambda line: typer.echo(line, err=True),
    )


def _report(result: Any) -> None:
    typer.echo(result.comparison.table())
    typer.echo(f"comparison saved in {result.saved}")
    if not result.comparison.passed:
        worse = ", ".join(m.metric for m in result.comparison.failures())
        raise _fail(f"Not published: the candidate is worse on {worse}.")
    for step in result.steps:
        typer.echo(step)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg="red", err=True)
    return typer.Exit(code)
