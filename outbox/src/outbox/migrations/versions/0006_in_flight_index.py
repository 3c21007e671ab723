"""The in-flight index: an endpoint's leased deliveries by lease end.

``ix_deliveries_leased`` (``endpoint_id`` WHERE ``lease_until IS NOT NULL``) gave every
leased delivery of an endpoint the same key, so counting the live ones (every claim
does, and the sweeper asks per endpoint) stepped over every entry left behind by
deliveries recorded since the last vacuum: a cost that grew with the backlog drained.
``ix_deliveries_in_flight`` adds ``lease_until``, so ``lease_until > now`` starts past
the expired and the long-finished ones.

Inside our namespace (``outbox.namespace``), like every revision. On PostgreSQL the new
index is built before the old one is dropped; building it reads the table once (the
index itself holds only leased rows).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from outbox.migrate import migrating_namespace

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LEASED = sa.text("lease_until IS NOT NULL")


def upgrade() -> None:
    ns = migrating_namespace()
    with op.batch_alter_table(ns.table("deliveries"), schema=ns.table_schema) as batch_op:
        batch_op.create_index(
            ns.index("ix_deliveries_in_flight"),
            ["endpoint_id", "lease_until"],
            unique=False,
            postgresql_where=LEASED,
            sqlite_where=LEASED,
        )
        batch_op.drop_index(ns.index("ix_deliveries_leased"))


def downgrade() -> None:
    ns = migrating_namespace()
    with op.batch_alter_table(ns.table("deliveries"), schema=ns.table_schema) as batch_op:
        batch_op.create_index(
            ns.index("ix_deliveries_leased"),
            ["endpoint_id"],
            unique=False,
            postgresql_where=LEASED,
            sqlite_where=LEASED,
        )
        batch_op.drop_index(ns.index("ix_deliveries_in_flight"))
