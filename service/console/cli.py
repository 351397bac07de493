"""`tunedesk agents create|list|disable|enable`: console accounts, from the server's machine."""

from __future__ import annotations

from typing import Annotated

import typer

agents_app = typer.Typer(help="Agent console accounts (roles agent, admin).", no_args_is_help=True)

TenantOption = Annotated[str, typer.Option(help="Tenant slug or id.")]


def _accounts():  # type: ignore[no-untyped-def]
    from service.config import Settings
    from service.console.accounts import AgentAccounts
    from service.db import make_engine, migrate, session_factory

    settings = Settings()
    engine = make_engine(settings.db_url)
    migrate(engine)
    return AgentAccounts(session_factory(engine), settings.console.invite_ttl_s)


@agents_app.command("create")
def create(
    email: Annotated[str, typer.Option(help="The agent's email (their login).")],
    tenant: TenantOption = "default",
    role: Annotated[str, typer.Option(help="agent or admin.")] = "agent",
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="TUNEDESK_AGENT_PASSWORD",
            help="10+ characters; asked for when not given (or TUNEDESK_AGENT_PASSWORD).",
        ),
    ] = "",
) -> None:
    """Create an agent who can sign in at once (the first admin of a workspace)."""
    from service.errors import TunedeskError

    try:
        agent = _accounts().create(tenant, email, password, role, name)
    except TunedeskError as exc:
        typer.secho(exc.message, fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{agent.id}\t{agent.email}\t{agent.role}\ttenant {agent.tenant_id}")


@agents_app.command("list")
def list_agents(tenant: TenantOption = "default") -> None:
    """The tenant's agents: id, email, role, status."""
    accounts = _accounts()
    for agent in accounts.list(accounts.tenant_id(tenant)):
        status = "disabled" if agent.disabled_at else ("invited" if agent.invite_hash else "active")
        typer.echo(f"{agent.id}\t{agent.email}\t{agent.role}\t{status}")


@agents_app.command("disable")
def disable(agent_id: str, tenant: TenantOption = "default") -> None:
    """Disable an agent: their sessions end at once."""
    accounts = _accounts()
    accounts.set_disabled(accounts.tenant_id(tenant), agent_id, True)
    typer.echo(f"disabled {agent_id}")
