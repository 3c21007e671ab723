"""Initial schema: endpoints, events (the outbox), deliveries and attempts.

Created inside our namespace (``outbox.namespace``). Installations that ran this
revision before it was namespaced are moved into it by ``outbox.legacy``.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 17:17:41.303318
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from outbox.migrate import migrating_namespace

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    ns = migrating_namespace()
    op.create_table(
        ns.table("endpoints"),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("event_types", JSON, nullable=False),
        sa.Column("scheme", sa.String(length=8), nullable=False),
        sa.Column("secrets", JSON, nullable=False),
        sa.Column("headers", JSON, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("max_concurrency", sa.Integer(), nullable=True),
        sa.Column("rate_limit", sa.Float(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("probe_delivery_id", sa.String(length=40), nullable=True),
        sa.Column("probe_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoints")),
        schema=ns.table_schema,
    )
    with op.batch_alter_table(ns.table("endpoints"), schema=ns.table_schema) as batch_op:
        batch_op.create_index(ns.index("ix_endpoints_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        ns.table("events"),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("workspace_id", "idempotency_key", name="uq_events_idempotency"),
        schema=ns.table_schema,
    )
    with op.batch_alter_table(ns.table("events"), schema=ns.table_schema) as batch_op:
        batch_op.create_index(ns.index("ix_events_created_at"), ["created_at"], unique=False)
        batch_op.create_index(ns.index("ix_events_type"), ["type"], unique=False)
        batch_op.create_index(
            ns.index("ix_events_waiting"),
            ["id"],
            unique=False,
            postgresql_where=sa.text("dispatched_at IS NULL"),
            sqlite_where=sa.text("dispatched_at IS NULL"),
        )
        batch_op.create_index(
            ns.index("ix_events_workspace_created"), ["workspace_id", "created_at"], unique=False
        )

    op.create_table(
        ns.table("deliveries"),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("cycle_attempts", sa.Integer(), nullable=False),
        sa.Column("next_trigger", sa.String(length=16), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("rung_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error_kind", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            [ns.column("endpoints", "id")],
            name=op.f("fk_deliveries_endpoint_id_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            [ns.column("events", "id")],
            name=op.f("fk_deliveries_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("event_id", "endpoint_id", name="uq_deliveries_event_endpoint"),
        schema=ns.table_schema,
    )
    with op.batch_alter_table(ns.table("deliveries"), schema=ns.table_schema) as batch_op:
        batch_op.create_index(
            ns.index("ix_deliveries_completed_at"), ["completed_at"], unique=False
        )
        batch_op.create_index(
            ns.index("ix_deliveries_due"),
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index(
            ns.index("ix_deliveries_endpoint_id_id"), ["endpoint_id", "id"], unique=False
        )
        batch_op.create_index(ns.index("ix_deliveries_status_id"), ["status", "id"], unique=False)
        batch_op.create_index(
            ns.index("ix_deliveries_workspace_id_id"), ["workspace_id", "id"], unique=False
        )

    op.create_table(
        ns.table("attempts"),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("request_headers", JSON, nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", JSON, nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("response_truncated", sa.Boolean(), nullable=False),
        sa.Column("error_kind", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            [ns.column("deliveries", "id")],
            name=op.f("fk_attempts_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
        sa.UniqueConstraint("delivery_id", "number", name="uq_attempts_number"),
        schema=ns.table_schema,
    )
    with op.batch_alter_table(ns.table("attempts"), schema=ns.table_schema) as batch_op:
        batch_op.create_index(ns.index("ix_attempts_started_at"), ["started_at"], unique=False)


def downgrade() -> None:
    ns = migrating_namespace()
    with op.batch_alter_table(ns.table("attempts"), schema=ns.table_schema) as batch_op:
        batch_op.drop_index(ns.index("ix_attempts_started_at"))

    op.drop_table(ns.table("attempts"), schema=ns.table_schema)
    with op.batch_alter_table(ns.table("deliveries"), schema=ns.table_schema) as batch_op:
        batch_op.drop_index(ns.index("ix_deliveries_workspace_id_id"))
        batch_op.drop_index(ns.index("ix_deliveries_status_id"))
        batch_op.drop_index(ns.index("ix_deliveries_endpoint_id_id"))
        batch_op.drop_index(
            ns.index("ix_deliveries_due"),
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_index(ns.index("ix_deliveries_completed_at"))

    op.drop_table(ns.table("deliveries"), schema=ns.table_schema)
    with op.batch_alter_table(ns.table("events"), schema=ns.table_schema) as batch_op:
        batch_op.drop_index(ns.index("ix_events_workspace_created"))
        batch_op.drop_index(
            ns.index("ix_events_waiting"),
            postgresql_where=sa.text("dispatched_at IS NULL"),
            sqlite_where=sa.text("dispatched_at IS NULL"),
        )
        batch_op.drop_index(ns.index("ix_events_type"))
        batch_op.drop_index(ns.index("ix_events_created_at"))

    op.drop_table(ns.table("events"), schema=ns.table_schema)
    with op.batch_alter_table(ns.table("endpoints"), schema=ns.table_schema) as batch_op:
        batch_op.drop_index(ns.index("ix_endpoints_workspace_id"))

    op.drop_table(ns.table("endpoints"), schema=ns.table_schema)
