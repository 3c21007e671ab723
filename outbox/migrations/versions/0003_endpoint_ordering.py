"""Ordered delivery, opt-in per endpoint: ``endpoints.ordering`` (NULL or ``fifo``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ordering", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("ordering")
