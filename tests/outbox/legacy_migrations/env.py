"""The Alembic environment of revisions 0001-0002 as they were before the namespace:
default schema, default ``alembic_version`` table. Tests build old installations with it."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
