"""Who is signed in, CSRF on every state-changing call, and the login rate limit."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request

from service.auth.authenticate import client_ip
from service.console.parts import ConsoleDep
from service.console.sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, SignedIn
from service.errors import Forbidden, RateLimited, Unauthorized


class SignInNeeded(Unauthorized):
    """No live session: pages redirect to the login form, the JSON API answers 401."""

    code = "session_required"


class CsrfRejected(Forbidden):
    code = "csrf_failed"


def signed_in(request: Request, console: ConsoleDep) -> SignedIn:
    agent = console.sessions.resolve(request.cookies.get(COOKIE))
    if agent is None:
        raise SignInNeeded("Sign in to the console again; your session ended or never began.")
    request.state.agent = agent
    return agent


AgentDep = Annotated[SignedIn, Depends(signed_in)]


def page_viewer(request: Request, console: ConsoleDep) -> SignedIn | None:
    """For pages: the signed-in agent, or None (the page then redirects to the login form)."""
    agent = console.sessions.resolve(request.cookies.get(COOKIE))
    request.state.agent = agent
    return agent


ViewerDep = Annotated[SignedIn | None, Depends(page_viewer)]


def admin(agent: AgentDep) -> SignedIn:
    if not agent.is_admin:
        raise Forbidden("Only an admin of this workspace may do this.")
    return agent


AdminDep = Annotated[SignedIn, Depends(admin)]


async def csrf_checked(request: Request, agent: AgentDep) -> SignedIn:
    """The signed-in agent, if the request carries their CSRF token (header or form field)."""
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        value = (await request.form()).get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not agent.csrf_ok(presented):
        raise CsrfRejected(
            f"Missing or wrong CSRF token: send the page's token as {CSRF_HEADER} "
            f"(or the {CSRF_FIELD} form field); reload the page if it is stale."
        )
    return agent


WriterDep = Annotated[SignedIn, Depends(csrf_checked)]


async def admin_writer(agent: WriterDep) -> SignedIn:
    return admin(agent)


AdminWriterDep = Annotated[SignedIn, Depends(admin_writer)]


def same_origin(request: Request) -> None:
    """Login and invitation forms have no session (no CSRF token) yet: their Origin, when the
    browser sends one, must be this site."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise CsrfRejected(f"Requests from {origin} may not sign in here.")


def limit_login(request: Request, console: ConsoleDep, tenant: str, email: str) -> None:
    """Count a login attempt per client IP and per account."""
    try:
        console.login_limiter.hit("ip", client_ip(request))
        console.login_limiter.hit("key", f"{tenant}\0{email.strip().lower()}")
    except RateLimited as exc:
        retry = (exc.headers or {}).get("Retry-After", "60")
        raise RateLimited(
            f"Too many sign-in attempts; try again in {retry} seconds.", int(retry)
        ) from exc


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/console/login?next={quote(target)}"
