"""`tunedesk dataset export`: rated transcripts (agents' corrections included) as JSONL, the
file `tunedesk dataset build --transcripts` reads. The admin API `GET /v1/transcripts/export`
and the console's Export button write the same lines (service/console/export.py)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer


def dataset_export(
    out: Annotated[Path, typer.Option(help="The JSONL file to write.")],
    tenant: Annotated[str, typer.Option(help="Tenant slug or id.")] = "default",
    product: Annotated[str | None, typer.Option(help="Only this product's answers.")] = None,
    channel: Annotated[str | None, typer.Option(help="api, widget, ...")] = None,
    model_version: Annotated[
        str | None, typer.Option(help="Only answers of this model version (or adapter, base).")
    ] = None,
    rating: Annotated[
        str, typer.Option(help="any, unrated, rated (by an agent), customer_bad, customer_good.")
    ] = "any",
    since: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"])] = None,
    until: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"])] = None,
) -> None:
    """Conversations with a rated answer matching the filters, one JSON line each."""
    from service.config import Settings
    from service.console.accounts import AgentAccounts
    from service.console.export import export_lines
    from service.console.queue import RATING_STATES, QueueFilter
    from service.db import make_engine, session_factory
    from service.errors import TunedeskError

    if rating not in RATING_STATES:
        raise typer.BadParameter(f"--rating must be one of {', '.join(RATING_STATES)}")
    settings = Settings()
    engine = make_engine(settings.db_url)
    try:
        sessions = session_factory(engine)
        tenant_id = AgentAccounts(sessions, settings.console.invite_ttl_s).tenant_id(tenant)
        where = QueueFilter(product, channel, model_version, rating, _day(since), _day(until))
        count = 0
        with out.open("w", encoding="utf-8") as file:
            for line in export_lines(sessions, tenant_id, where):
                file.write(line)
                count += 1
    except TunedeskError as exc:
        typer.secho(exc.message, fg="red", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    typer.echo(f"{count} conversations with rated answers → {out}")


def _day(moment: datetime | None) -> date | None:
    return moment.date() if moment else None
