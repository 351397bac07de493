"""Agent accounts: create, invite, accept an invitation, log in, disable.

Passwords are hashed with argon2id (argon2-cffi); an invitation token and a session token are
random, shown once, and stored as SHA-256 hashes, like API keys.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from service.store.models import Agent, Tenant, as_utc, utcnow

Role = Literal["agent", "admin"]
ROLES: tuple[Role, ...] = ("agent", "admin")
MIN_PASSWORD = 10
_hasher = PasswordHasher()
# verified against when the email is unknown, so a miss costs what a hit costs
_DUMMY_HASH = _hasher.hash("no such agent, but the same work")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AgentNotFound(NotFound):
    code = "agent_not_found"


@dataclass(frozen=True)
class Invitation:
    agent: Agent
    token: str  # shown once, in the invitation link


class AgentAccounts:
    """Synchronous; async callers run it in a worker thread."""

    def __init__(self, sessions: sessionmaker[Session], invite_ttl_s: int) -> None:
        self._sessions = sessions
        self._invite_ttl = timedelta(seconds=invite_ttl_s)

    def tenant_id(self, tenant: str) -> str:
        """The id of a tenant named by id or slug."""
        with self._sessions() as s:
            row = s.get(Tenant, tenant) or s.scalar(select(Tenant).where(Tenant.slug == tenant))
            if row is None:
                raise NotFound(f"No tenant {tenant!r}; `tunedesk tenants list` shows them.")
            return row.id

    def create(self, tenant: str, email: str, password: str, role: Role, name: str = "") -> Agent:
        """An agent who can log in at once (the CLI's first admin)."""
        _check_password(password)
        agent = Agent(tenant_id=self.tenant_id(tenant), email=_email(email), name=name, role=role)
        agent.password_hash = _hasher.hash(password)
        return self._insert(agent)

    def invite(self, tenant_id: str, email: str, role: Role, invited_by: str) -> Invitation:
        """An agent without a password yet, and the one-time token that lets them set one."""
        token = secrets.token_urlsafe(32)
        agent = Agent(tenant_id=tenant_id, email=_email(email), role=role, invited_by=invited_by)
        agent.invite_hash = token_hash(token)
        return Invitation(self._insert(agent), token)

    def _insert(self, agent: Agent) -> Agent:
        if agent.role not in ROLES:
            raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, not {agent.role!r}.")
        try:
            with self._sessions.begin() as s:
                s.add(agent)
        except IntegrityError as exc:
            raise Conflict(f"{agent.email} already has an account in this tenant.") from exc
        return agent

    def accept(self, token: str, password: str, name: str) -> Agent:
        """Set the invited agent's password; the invitation is used up."""
        _check_password(password)
        with self._sessions.begin() as s:
            agent = s.scalar(select(Agent).where(Agent.invite_hash == token_hash(token)))
            expired = agent is not None and as_utc(agent.created_at) + self._invite_ttl < utcnow()
            if agent is None or expired or agent.disabled_at is not None:
                raise NotFound("This invitation is unknown, used or expired; ask an admin.")
            agent.password_hash, agent.invite_hash = _hasher.hash(password), None
            agent.name = name.strip()[:200]
        return agent

    def verify(self, tenant: str, email: str, password: str) -> Agent:
        """The agent these credentials name, or Unauthorized (same answer for every miss)."""
        with self._sessions.begin() as s:
            row = s.scalar(
                select(Agent)
                .join(Tenant, Tenant.id == Agent.tenant_id)
                .where((Tenant.slug == tenant) | (Tenant.id == tenant))
                .where(Agent.email == _email(email))
            )
            if not _password_matches(row.password_hash if row else None, password):
                raise Unauthorized("Wrong workspace, email or password.")
            assert row is not None
            if row.disabled_at is not None:
                raise Unauthorized("This account is disabled; ask an admin of your workspace.")
            row.last_login_at = utcnow()
        return row

    def list(self, tenant_id: str) -> list[Agent]:
        with self._sessions() as s:
            query = select(Agent).where(Agent.tenant_id == tenant_id).order_by(Agent.created_at)
            return list(s.scalars(query))

    def set_disabled(self, tenant_id: str, agent_id: str, disabled: bool) -> Agent:
        """Disable (their sessions end at once) or enable an agent of this tenant."""
        with self._sessions.begin() as s:
            agent = s.get(Agent, agent_id)
            if agent is None or agent.tenant_id != tenant_id:
                raise AgentNotFound(f"No agent with id {agent_id!r} in this workspace.")
            agent.disabled_at = utcnow() if disabled else None
        return agent


def _password_matches(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"The password needs at least {MIN_PASSWORD} characters.")


def _email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise InvalidRequest(f"{email!r} is not an email address.")
    return email
