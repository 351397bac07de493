"""`tunedesk models list|activate|canary|rollback|events`: one command per change, recorded.

Registered through the `tunedesk.commands` entry-point group. Each command calls the running
service's /v1/models API (see service/versions/client.py for why not the database).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

models_app = typer.Typer(
    help="List, activate, canary and roll back model versions of the running service.",
    no_args_is_help=True,
)

UrlOption = Annotated[
    str | None, typer.Option(help="The service's base URL (default: http://HOST:PORT).")
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        envvar="TUNEDESK_API_KEY",
        help="A tenant key with the admin scope (default: the operator key, "
        "TUNEDESK_ADMIN_API_KEY).",
    ),
]
TenantOption = Annotated[
    str | None, typer.Option(help="Tenant id the operator key acts for (default: default).")
]
NameArgument = Annotated[str, typer.Argument(help="The model version's name.")]


@contextmanager
def models_client(url: str | None, api_key: str | None, tenant: str | None) -> Iterator[Any]:
    """A ModelsClient for the command line; service errors exit with status 1."""
    from service.config import Settings
    from service.versions.client import Connection, ModelsClient, ServiceError

    try:
        connection = Connection.resolve(Settings(), url, api_key, tenant)
        with connection.client() as http:
            yield ModelsClient(http)
    except ServiceError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc


def describe(version: dict[str, Any]) -> str:
    """One line per version: name, status, canary share, adapter."""
    share = f" {version['canary_share']:.0%}" if version["status"] == "canary" else ""
    adapter = version["adapter"] or "(base model)"
    return f"{version['name']:<28} {version['status'] + share:<14} {adapter}"


@models_app.command("list")
def list_versions(
    url: UrlOption = None,
    api_key: KeyOption = None,
    tenant: TenantOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
) -> None:
    """The tenant's model versions, oldest first, and what answers when none is active."""
    with models_client(url, api_key, tenant) as client:
        listing = client.versions()
    if as_json:
        typer.echo(json.dumps(listing, indent=2))
        return
    for version in listing["data"]:
        typer.echo(describe(version))
    if not any(v["status"] == "active" for v in listing["data"]):
        typer.echo(f"no active version: {listing['default_adapter'] or 'the base model'} answers")


def _change(
    action: Callable[[Any], dict[str, Any]], url: str | None, key: str | None, tenant: str | None
) -> dict[str, Any]:
    with models_client(url, key, tenant) as client:
        return action(client)


@models_app.command("activate")
def activate(
    name: NameArgument,
    url: UrlOption = None,
    api_key: KeyOption = None,
    tenant: TenantOption = None,
) -> None:
    """Make NAME answer every conversation; the active version is retired."""
    version = _change(lambda c: c.activate(name), url, api_key, tenant)
    typer.echo(describe(version))


@models_app.command("canary")
def canary(
    name: NameArgument,
    share: Annotated[float, typer.Argument(min=0.0, max=1.0, help="0-1; 0 ends the canary.")],
    url: UrlOption = None,
    api_key: KeyOption = None,
    tenant: TenantOption = None,
) -> None:
    """Let SHARE of the conversations (a stable hash of their ids) use NAME."""
    version = _change(lambda c: c.canary(name, share), url, api_key, tenant)
    typer.echo(describe(version))


@models_app.command("rollback")
def rollback(
    name: Annotated[
        str | None, typer.Argument(help="The version to take off the air (default: the active).")
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
    tenant: TenantOption = None,
) -> None:
    """Take a version off the air: the previously active version answers again."""

    def action(client: Any) -> dict[str, Any]:
        target = name or (client.active() or {}).get("name")
        if target is None:
            typer.secho("No active version to roll back.", fg="red", err=True)
            raise typer.Exit(1)
        return dict(client.rollback(target))

    result = _change(action, url, api_key, tenant)
    typer.echo(f"rolled back: {describe(result['rolled_back'])}")
    active = result["active"]
    typer.echo(f"active now:  {describe(active)}" if active else "active now:  the default")


@models_app.command("events")
def events(
    name: NameArgument,
    url: UrlOption = None,
    api_key: KeyOption = None,
    tenant: TenantOption = None,
) -> None:
    """NAME's audit trail: what was done, by which key, when."""
    for event in _change(lambda c: {"rows": c.events(name)}, url, api_key, tenant)["rows"]:
        detail = json.dumps(event["detail"]) if event["detail"] else ""
        typer.echo(
            f"{event['created_at']}  {event['action']:<14} {event['actor'] or '-':<34} {detail}"
        )
