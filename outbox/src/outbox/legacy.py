"""Adopting an installation made before our tables had a namespace of their own.

Up to revision 0002 the tables were ``endpoints``, ``events``, ``deliveries`` and
``attempts`` in the connection's default schema (unprefixed on SQLite), and the history
was Alembic's default ``alembic_version`` table. :func:`adopt_legacy_tables` moves those
tables, rows, indexes and constraints included, into the namespace, writes the revision
into our own version table and takes our row out of the old one (dropping it when it
held nothing else). It runs inside the migration's transaction, so it happens whole or
not at all.

It only acts on what is unmistakably ours: the old revision id *and* all four tables
with their telltale columns. A host application's own ``events`` table or
``alembic_version`` is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox.namespace import VERSION_TABLE, Namespace

LEGACY_REVISIONS = ("0001", "0002")
"""Revisions that were recorded in the default ``alembic_version`` table."""

_FINGERPRINT = {
    "endpoints": {"id", "workspace_id", "url", "secrets", "scheme", "probe_until"},
    "events": {"id", "workspace_id", "type", "body", "idempotency_key", "dispatched_at"},
    "deliveries": {"id", "event_id", "endpoint_id", "lease_token", "cycle_attempts"},
    "attempts": {"id", "delivery_id", "number", "response_truncated", "outcome"},
}


def adopt_legacy_tables(
    connection: Connection, namespace: Namespace, *, stamp: Callable[[str], object]
) -> str | None:
    """Move a pre-namespace installation into ``namespace``; return its revision, or
    ``None`` when there is nothing of ours to move. ``stamp(revision)`` records the
    revision in our own version table."""
    inspector = sa.inspect(connection)
    if inspector.has_table(namespace.version_table, schema=namespace.table_schema):
        return None
    revision = _legacy_revision(connection, inspector)
    if revision is None:
        return None
    if namespace.prefixed:
        _rename_sqlite_tables(connection, namespace)
    else:
        _move_postgres_tables(connection, namespace)
    stamp(revision)
    connection.execute(
        sa.text(f"DELETE FROM {VERSION_TABLE} WHERE version_num = :revision"),
        {"revision": revision},
    )
    if connection.execute(sa.text(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar_one() == 0:
        connection.execute(sa.text(f"DROP TABLE {VERSION_TABLE}"))
    return revision


def _legacy_revision(connection: Connection, inspector: sa.Inspector) -> str | None:
    if not inspector.has_table(VERSION_TABLE):
        return None
    stored = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
    ours = [str(revision) for revision in stored if revision in LEGACY_REVISIONS]
    if len(ours) != 1:
        return None
    for table, columns in _FINGERPRINT.items():
        if not inspector.has_table(table):
            return None
        if not columns <= {column["name"] for column in inspector.get_columns(table)}:
            return None
    return ours[0]


def _move_postgres_tables(connection: Connection, namespace: Namespace) -> None:
    current = connection.execute(sa.text("SELECT current_schema()")).scalar_one()
    if current == namespace.schema:
        return  # already where they belong; only the history moves
    for table in _FINGERPRINT:
        connection.execute(
            sa.text(f'ALTER TABLE "{current}"."{table}" SET SCHEMA "{namespace.schema}"')
        )


def _rename_sqlite_tables(connection: Connection, namespace: Namespace) -> None:
    # SQLite (3.26+) rewrites the foreign keys that point at a renamed table. Index names
    # are database-wide there, so ours are recreated under prefixed names too; the
    # automatic indexes of unique constraints follow their table by themselves.
    for table in _FINGERPRINT:
        connection.execute(sa.text(f'ALTER TABLE "{table}" RENAME TO "{namespace.table(table)}"'))
    indexes = connection.execute(
        sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN (" + ", ".join(f"'{namespace.table(t)}'" for t in _FINGERPRINT) + ")"
        )
    ).all()
    for name, sql in indexes:
        if name.startswith(namespace.index("")):
            continue
        # The name as written in `CREATE [UNIQUE] INDEX name`, quoted or not.
        head = re.match(rf'CREATE\s+(?:UNIQUE\s+)?INDEX\s+("?){re.escape(name)}\1', sql, re.I)
        if head is None:
            continue
        renamed = f'{sql[: head.start(1)]}"{namespace.index(name)}"{sql[head.end() :]}'
        connection.execute(sa.text(f'DROP INDEX "{name}"'))
        connection.exec_driver_sql(renamed)
