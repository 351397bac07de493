"""tenants, API keys, idempotency, webhooks, model versions; conversations belong to a tenant

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 23:05:00

Conversations stored before tenants existed are given to the `default` tenant, which this
migration creates, so nothing already stored is lost.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    tenants = op.create_table(
        "tenants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("products", sa.JSON(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.bulk_insert(
        tenants,
        [
            {
                "id": "default",
                "slug": "default",
                "name": "Default workspace",
                "created_at": datetime.now(UTC),
            }
        ],
    )
    _create_keys_and_idempotency()
    _create_webhooks()
    _create_model_versions()
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("tenant_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("customer_ref", sa.String(200), nullable=True))
        batch.add_column(sa.Column("closed_at", TZ, nullable=True))
    op.execute("UPDATE conversations SET tenant_id = 'default' WHERE tenant_id IS NULL")
    with op.batch_alter_table("conversations") as batch:
        batch.alter_column("tenant_id", existing_type=sa.String(32), nullable=False)
        batch.create_foreign_key("fk_conversations_tenant", "tenants", ["tenant_id"], ["id"])
        batch.create_index("ix_conversations_tenant_id", ["tenant_id"])
        batch.create_index("ix_conversations_customer_ref", ["customer_ref"])
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("model_version", sa.String(100), nullable=True))
    with op.batch_alter_table("ratings") as batch:
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=True))


def _create_keys_and_idempotency() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("prefix", sa.String(20), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("allowed_origins", sa.JSON(), nullable=True),
        sa.Column("rotated_from", sa.String(32), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_used_at", TZ, nullable=True),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("revoked_at", TZ, nullable=True),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("tenant_id", "key", name="uq_idempotency_tenant_key"),
    )


def _create_webhooks() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_webhook_endpoints_tenant_id", "webhook_endpoints", ["tenant_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column(
            "endpoint_id", sa.String(32), sa.ForeignKey("webhook_endpoints.id"), nullable=False
        ),
        sa.Column("event", sa.String(50), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("delivered_at", TZ, nullable=True),
    )
    op.create_index("ix_webhook_deliveries_tenant_id", "webhook_deliveries", ["tenant_id"])
    op.create_index("ix_webhook_deliveries_endpoint_id", "webhook_deliveries", ["endpoint_id"])
    op.create_index(
        "ix_webhook_deliveries_next_attempt_at", "webhook_deliveries", ["next_attempt_at"]
    )


def _create_model_versions() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("adapter", sa.String(200), nullable=True),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("canary_share", sa.Float(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("activated_at", TZ, nullable=True),
        sa.UniqueConstraint("tenant_id", "name", name="uq_model_version_name"),
    )
    op.create_index("ix_model_versions_tenant_id", "model_versions", ["tenant_id"])
    op.create_table(
        "model_version_events",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("version_id", sa.String(32), sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("actor", sa.String(100), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_model_version_events_tenant_id", "model_version_events", ["tenant_id"])


def downgrade() -> None:
    with op.batch_alter_table("ratings") as batch:
        batch.drop_column("tags")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("model_version")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_customer_ref")
        batch.drop_index("ix_conversations_tenant_id")
        batch.drop_constraint("fk_conversations_tenant", type_="foreignkey")
        batch.drop_column("closed_at")
        batch.drop_column("customer_ref")
        batch.drop_column("tenant_id")
    for table in (
        "model_version_events",
        "model_versions",
        "webhook_deliveries",
        "webhook_endpoints",
        "idempotency_keys",
        "api_keys",
        "tenants",
    ):
        op.drop_table(table)
