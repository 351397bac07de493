"""agent console - agent accounts, sessions, who rated, and retraining jobs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:40:00

Console ratings stay in `ratings` (append-only, what the dataset builder reads);
`agent_ratings` says which agent gave each one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("invite_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("invited_by", sa.String(32), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_login_at", TZ, nullable=True),
        sa.Column("disabled_at", TZ, nullable=True),
        sa.UniqueConstraint("tenant_id", "email", name="uq_agent_tenant_email"),
    )
    op.create_index("ix_agents_tenant_id", "agents", ["tenant_id"])
    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("agent_id", sa.String(32), sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
    )
    op.create_index("ix_agent_sessions_agent_id", "agent_sessions", ["agent_id"])
    _create_ratings_and_jobs()


def _create_ratings_and_jobs() -> None:
    op.create_table(
        "agent_ratings",
        sa.Column("rating_id", sa.String(32), sa.ForeignKey("ratings.id"), primary_key=True),
        sa.Column("agent_id", sa.String(32), sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
    )
    op.create_index("ix_agent_ratings_agent_id", "agent_ratings", ["agent_id"])
    op.create_index("ix_agent_ratings_tenant_id", "agent_ratings", ["tenant_id"])
    op.create_table(
        "console_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("output", sa.String(500), nullable=True),
        sa.Column("log_path", sa.String(500), nullable=False),
        sa.Column("started_by", sa.String(32), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
    )
    op.create_index("ix_console_jobs_tenant_id", "console_jobs", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("console_jobs")
    op.drop_table("agent_ratings")
    op.drop_table("agent_sessions")
    op.drop_table("agents")
