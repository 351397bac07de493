"""conversations.api_key_id - a widget key sees only the conversations it created

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:40:00

A publishable (widget) key lives in a web page, so anyone may copy it; the conversation ids
it could act on were any of the tenant's. Conversations now record the publishable key that
started them, and such a key reads, posts to, hands off and rates only those. Secret keys keep
tenant-wide access; rows from before this revision have NULL, which no widget key matches.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("api_key_id", sa.String(32), nullable=True))
        batch.create_index("ix_conversations_api_key_id", ["api_key_id"])


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_api_key_id")
        batch.drop_column("api_key_id")
