"""Ordered delivery and traced publishing.

``endpoints.ordering``: NULL (deliveries in parallel, the default) or ``fifo`` (at most
one delivery of the endpoint in flight, in event order; the delivery engine's claim
enforces it). ``events.trace_context``: the W3C trace context (``traceparent``, and
``tracestate`` when there is one) of the span that published the event, so the poller
and the workers continue the producer's trace; NULL when the producer was not tracing.

Inside our namespace (``outbox.namespace``), like every revision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from outbox.migrate import migrating_namespace

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ns = migrating_namespace()
    with op.batch_alter_table(ns.table("endpoints"), schema=ns.table_schema) as batch_op:
        batch_op.add_column(sa.Column("ordering", sa.String(length=8), nullable=True))
    with op.batch_alter_table(ns.table("events"), schema=ns.table_schema) as batch_op:
        batch_op.add_column(sa.Column("trace_context", JSON, nullable=True))


def downgrade() -> None:
    ns = migrating_namespace()
    with op.batch_alter_table(ns.table("events"), schema=ns.table_schema) as batch_op:
        batch_op.drop_column("trace_context")
    with op.batch_alter_table(ns.table("endpoints"), schema=ns.table_schema) as batch_op:
        batch_op.drop_column("ordering")
