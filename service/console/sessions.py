"""Console sessions: an HttpOnly, SameSite cookie holding a random token (stored hashed), and
a CSRF token every state-changing request must send back."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.console.accounts import token_hash
from service.store.models import Agent, AgentSession, as_utc, utcnow

COOKIE = "tunedesk_console"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class SignedIn:
    """The agent behind a request's session cookie."""

    agent_id: str
    tenant_id: str
    email: str
    role: str
    session_id: str
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf_token)


class SessionStore:
    def __init__(self, sessions: sessionmaker[Session], ttl_s: int) -> None:
        self._sessions = sessions
        self._ttl = timedelta(seconds=ttl_s)

    def start(self, agent: Agent) -> str:
        """A new session for a verified agent; returns the cookie's token."""
        token = secrets.token_urlsafe(32)
        row = AgentSession(
            agent_id=agent.id,
            token_hash=token_hash(token),
            csrf_token=secrets.token_urlsafe(32),
            expires_at=utcnow() + self._ttl,
        )
        with self._sessions.begin() as s:
            s.add(row)
        return token

    def resolve(self, token: str | None) -> SignedIn | None:
        """The live session of this cookie token: not expired, revoked, nor its agent disabled."""
        if not token:
            return None
        with self._sessions() as s:
            found = s.execute(
                select(AgentSession, Agent)
                .join(Agent, Agent.id == AgentSession.agent_id)
                .where(AgentSession.token_hash == token_hash(token))
            ).first()
        if found is None:
            return None
        session, agent = found
        if session.revoked_at or agent.disabled_at or as_utc(session.expires_at) < utcnow():
            return None
        return SignedIn(
            agent.id, agent.tenant_id, agent.email, agent.role, session.id, session.csrf_token
        )

    def end(self, session_id: str) -> None:
        with self._sessions.begin() as s:
            row = s.get(AgentSession, session_id)
            if row is not None:
                row.revoked_at = utcnow()
