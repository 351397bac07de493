"""`tunedesk tenants ...` and `tunedesk keys ...`: the operator's bootstrap on the server's
machine, straight against the database (the HTTP API needs a key to begin with)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from service.errors import TunedeskError

tenants_app = typer.Typer(help="Create and list tenants (workspaces).", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke a tenant's API keys.", no_args_is_help=True)

TenantOption = Annotated[str, typer.Option(help="Tenant id (see `tunedesk tenants list`).")]


def _store():  # type: ignore[no-untyped-def]
    from service.config import Settings
    from service.db import make_engine, migrate, session_factory
    from service.store.tenants import TenantStore

    engine = make_engine(Settings().db_url)
    migrate(engine)
    return TenantStore(session_factory(engine))


@contextmanager
def _clear_errors() -> Iterator[None]:
    """A domain error is a one-line message and exit status 1, not a traceback."""
    try:
        yield
    except TunedeskError as exc:
        typer.secho(exc.message, fg="red", err=True)
        raise typer.Exit(1) from exc


@tenants_app.command("create")
def tenants_create(
    slug: Annotated[str, typer.Argument(help="Short URL-safe name, e.g. acme.")],
    name: Annotated[str, typer.Argument(help="Display name.")],
) -> None:
    """Create a tenant; then make it an admin key with `tunedesk keys create --tenant ID`."""
    with _clear_errors():
        tenant = _store().create_tenant(slug, name, None)
    typer.echo(f"{tenant.id}\t{tenant.slug}\t{tenant.name}")


@tenants_app.command("list")
def tenants_list() -> None:
    """Every tenant: id, slug, name."""
    for tenant in _store().list_tenants():
        typer.echo(f"{tenant.id}\t{tenant.slug}\t{tenant.name}")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. zendesk.")] = "cli",
    scope: Annotated[
        list[str] | None, typer.Option(help="chat, agent or admin (repeatable; default chat).")
    ] = None,
    origin: Annotated[
        list[str] | None,
        typer.Option(help="Makes a publishable widget key for this origin (repeatable)."),
    ] = None,
    tenant: TenantOption = "default",
) -> None:
    """Create a key and print it: it is shown this once and stored only as a hash."""
    from service.store.tenants import KeySpec

    scopes = sorted(set(scope or ["chat"]))
    if not set(scopes) <= {"chat", "agent", "admin"}:
        raise typer.BadParameter("scopes are chat, agent and admin", param_hint="--scope")
    spec = (
        KeySpec(name, "publishable", ["widget"], [o.rstrip("/") for o in origin])
        if origin
        else KeySpec(name, "secret", scopes)
    )
    with _clear_errors():
        row, plain = _store().create_key(tenant, spec)
    typer.echo(plain)
    typer.secho(f"key {row.id} ({', '.join(row.scopes)}) for tenant {tenant}", err=True)


@keys_app.command("list")
def keys_list(tenant: TenantOption = "default") -> None:
    """The tenant's active keys: id, prefix, kind, scopes, name."""
    for row in _store().list_keys(tenant):
        typer.echo(f"{row.id}\t{row.prefix}…\t{row.kind}\t{','.join(row.scopes)}\t{row.name}")


@keys_app.command("revoke")
def keys_revoke(key_id: str, tenant: TenantOption = "default") -> None:
    """Revoke a key at once."""
    with _clear_errors():
        _store().revoke_key(tenant, key_id)
    typer.echo(f"revoked {key_id}")
