"""The console's services, built once per app from the app's own components."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from service.console.accounts import AgentAccounts
from service.console.jobs import Jobs
from service.console.reviews import Reviews
from service.console.sessions import SessionStore
from service.db import session_factory
from service.deps import Components, get_components
from service.ratelimit import RateLimiter

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


@dataclass
class Console:
    components: Components
    accounts: AgentAccounts
    sessions: SessionStore
    login_limiter: RateLimiter
    reviews: Reviews
    jobs: Jobs

    @property
    def secure_cookies(self) -> bool:
        settings = self.components.settings
        explicit = settings.console.secure_cookies
        return settings.environment == "production" if explicit is None else explicit


def build_console(components: Components) -> Console:
    settings = components.settings
    sessions = session_factory(components.database)
    console = settings.console
    return Console(
        components=components,
        accounts=AgentAccounts(sessions, console.invite_ttl_s),
        sessions=SessionStore(sessions, console.session_ttl_s),
        login_limiter=RateLimiter(
            settings.rate_limit_storage, console.login_per_account, console.login_per_ip
        ),
        reviews=Reviews(sessions, components.ratings),
        jobs=Jobs(sessions, settings),
    )


def get_console(request: Request) -> Console:
    """The app's console, built on first use (the app's lifespan built its components)."""
    state = request.app.state
    if getattr(state, "console", None) is None:
        state.console = build_console(get_components(request))
    console: Console = state.console
    return console


ConsoleDep = Annotated[Console, Depends(get_console)]
