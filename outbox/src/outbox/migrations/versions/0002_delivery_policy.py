"""Delivery policy: rate-limit state, held deliveries, the in-flight index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from outbox.migrate import migrating_namespace

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ns = migrating_namespace()
    with op.batch_alter_table(ns.table("endpoints"), schema=ns.table_schema) as batch_op:
        batch_op.add_column(sa.Column("rate_tat", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table(ns.table("deliveries"), schema=ns.table_schema) as batch_op:
        batch_op.add_column(sa.Column("held_by", sa.String(length=16), nullable=True))
        batch_op.create_index(
            ns.index("ix_deliveries_leased"),
            ["endpoint_id"],
            unique=False,
            postgresql_where=sa.text("lease_until IS NOT NULL"),
            sqlite_where=sa.text("lease_until IS NOT NULL"),
        )
        batch_op.create_index(
            ns.index("ix_deliveries_held"),
            ["endpoint_id", "held_by"],
            unique=False,
            postgresql_where=sa.text("held_by IS NOT NULL"),
            sqlite_where=sa.text("held_by IS NOT NULL"),
        )


def downgrade() -> None:
    ns = migrating_namespace()
    with op.batch_alter_table(ns.table("deliveries"), schema=ns.table_schema) as batch_op:
        batch_op.drop_index(
            ns.index("ix_deliveries_held"),
            postgresql_where=sa.text("held_by IS NOT NULL"),
            sqlite_where=sa.text("held_by IS NOT NULL"),
        )
        batch_op.drop_index(
            ns.index("ix_deliveries_leased"),
            postgresql_where=sa.text("lease_until IS NOT NULL"),
            sqlite_where=sa.text("lease_until IS NOT NULL"),
        )
        batch_op.drop_column("held_by")

    with op.batch_alter_table(ns.table("endpoints"), schema=ns.table_schema) as batch_op:
        batch_op.drop_column("rate_tat")
