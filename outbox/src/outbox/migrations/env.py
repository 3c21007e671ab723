"""Alembic environment: runs on the connection handed in by ``outbox.migrate``.

The revisions read the namespace (schema or SQLite prefix) from
``config.attributes["namespace"]``; the version table lives inside it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlalchemy.engine import Connection

from outbox.models import Base
from outbox.namespace import namespace_of

config = context.config


def _run(connection: Connection) -> None:
    namespace = config.attributes.setdefault("namespace", namespace_of(connection))
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
        version_table=namespace.version_table,
        version_table_schema=namespace.table_schema,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.begin() as conn:
        _run(conn)
