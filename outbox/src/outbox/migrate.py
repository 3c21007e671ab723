"""Schema migrations (Alembic), run by ``catentio-webhooks db upgrade``.

The history is our own: Alembic's version table lives in our schema on PostgreSQL and is
``<schema>_alembic_version`` on SQLite, so it never meets the host application's
``alembic_version`` (or Django's, Prisma's, Knex's). See :mod:`outbox.namespace`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from outbox.legacy import adopt_legacy_tables
from outbox.namespace import Namespace, namespace_of

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(namespace: Namespace | None = None) -> Config:
    """An Alembic config pointing at this package's migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if namespace is not None:
        config.attributes["namespace"] = namespace
    return config


def version_options(namespace: Namespace) -> dict[str, str | None]:
    """Where Alembic keeps our revision: ``version_table`` and ``version_table_schema``."""
    return {
        "version_table": namespace.version_table,
        "version_table_schema": namespace.table_schema,
    }


MIGRATION_LOCK = 0x63617465  # an arbitrary constant: "cate"
"""PostgreSQL advisory lock key held while migrating."""


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring our schema up to ``revision`` (the latest by default), creating it if missing.

    Safe to run again, and safe to run from several hosts at once: on PostgreSQL an
    advisory lock makes them take turns, so the second finds the work done. Tables made
    before the namespace existed are moved into it first, rows and all
    (:mod:`outbox.legacy`). Nothing outside our schema (or prefix) is touched.
    """
    namespace = namespace_of(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # A migration may rightly run longer than the hot path's statement timeout.
            connection.execute(text("SET LOCAL statement_timeout = 0"))
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            _create_schema(connection, namespace.schema)
        config = alembic_config(namespace)
        config.attributes["connection"] = connection
        adopt_legacy_tables(connection, namespace, stamp=lambda rev: command.stamp(config, rev))
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """Our revision in the database, or ``None`` before the first upgrade."""
    namespace = namespace_of(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=version_options(namespace))
        return context.get_current_revision()


def head_revision() -> str | None:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown id
        return False


def _create_schema(connection: Connection, schema: str) -> None:
    # Look first: a DBA may have created the schema for a role that may not create schemas,
    # and CREATE SCHEMA IF NOT EXISTS still asks for that right.
    exists = connection.execute(
        text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}
    ).first()
    if exists is None:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))


def migrating_namespace() -> Namespace:
    """The namespace the running migration works in; revision files call it."""
    from alembic import op

    namespace: Namespace = op.get_context().config.attributes["namespace"]  # type: ignore[union-attr]
    return namespace
