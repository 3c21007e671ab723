"""The backlog index: an endpoint's pending deliveries in the order a pull takes them.

A worker pulls an endpoint's backlog as its slots free: the endpoint's oldest due
deliveries, ``ORDER BY next_attempt_at, id LIMIT n``. No index held that order for one
endpoint, so PostgreSQL read every pending delivery of the endpoint and sorted them for
each pull (with fresh statistics: a sequential scan; without: a bitmap AND of
``ix_deliveries_due`` and ``ix_deliveries_endpoint_id_id``): 140 ms a pull at 100,000
pending, a cost that grew with the backlog. ``ix_deliveries_backlog`` (``endpoint_id,
next_attempt_at, id`` WHERE ``status = 'pending'``) answers it by reading ``n`` entries.

Inside our namespace (``outbox.namespace``), like every revision. Building it reads the
table once; the index holds only pending rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from outbox.migrate import migrating_namespace

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    ns = migrating_namespace()
    with op.batch_alter_table(ns.table("deliveries"), schema=ns.table_schema) as batch_op:
        batch_op.create_index(
            ns.index("ix_deliveries_backlog"),
            ["endpoint_id", "next_attempt_at", "id"],
            unique=False,
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        )


def downgrade() -> None:
    ns = migrating_namespace()
    with op.batch_alter_table(ns.table("deliveries"), schema=ns.table_schema) as batch_op:
        batch_op.drop_index(ns.index("ix_deliveries_backlog"))
