"""messages.raw_content: the model's own text when answer hygiene cut or replaced it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:50:00

`content` keeps what the customer was shown; `raw_content` what the model wrote (NULL when
the two are the same), so a cut or a replaced leak can be reviewed and fed to retraining.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("raw_content", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("raw_content")
