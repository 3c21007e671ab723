"""Where our tables live in a database that belongs to someone else.

The outbox lives in the producer's own database, beside the host application's tables
and migrations. So everything of ours is namespaced:

- on PostgreSQL, every table, index and function lives in one schema
  (``catentio_webhooks`` unless configured), with Alembic's version table inside it;
- on SQLite, which has no schemas, every table and index name carries the prefix
  ``<schema>_`` (``catentio_webhooks_events``, ``catentio_webhooks_alembic_version``).

The models declare the default schema name as their schema. An engine reaches another
schema through SQLAlchemy's ``schema_translate_map`` execution option, and a SQLite engine
turns ``schema.table`` into ``schema_table`` as statements go out. :func:`bind` installs
both on an engine, in place, so a producer's existing engine and sessions opt in with one
line::

    outbox.bind(engine, schema="catentio_webhooks")

The default schema needs no call at all on PostgreSQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from outbox.errors import InvalidSchemaName

DEFAULT_SCHEMA = "catentio_webhooks"
"""The PostgreSQL schema (and SQLite table prefix, plus ``_``) used unless configured."""

MAX_SCHEMA_LENGTH = 48
"""Longest schema name: PostgreSQL identifiers stop at 63 bytes, and ``<schema>_alembic_…``
style names must fit."""

VERSION_TABLE = "alembic_version"
"""Alembic's version table; inside our schema on PostgreSQL, prefixed on SQLite."""

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]*")
_TRANSLATE = "schema_translate_map"


def check_schema(name: object) -> str:
    """Return ``name`` if it can name our schema: lowercase ``[a-z0-9_]``, not a digit first.

    Unquoted lowercase identifiers mean the same thing in every client and in every
    ``GRANT`` a DBA types, so nothing else is accepted.
    """
    if not isinstance(name, str) or not _SCHEMA.fullmatch(name):
        raise InvalidSchemaName(
            f"database schema {name!r} must be lowercase letters, digits and '_', "
            "not starting with a digit"
        )
    if len(name) > MAX_SCHEMA_LENGTH:
        raise InvalidSchemaName(
            f"database schema {name!r} is longer than {MAX_SCHEMA_LENGTH} characters"
        )
    if name.startswith("pg_"):
        raise InvalidSchemaName(f"database schema {name!r}: 'pg_' names are PostgreSQL's own")
    return name


@dataclass(frozen=True)
class Namespace:
    """Our schema on one kind of database: how its tables, indexes and history are named."""

    schema: str
    dialect: str

    @property
    def prefixed(self) -> bool:
        """Whether names carry the schema as a prefix (SQLite) rather than a qualifier."""
        return self.dialect != "postgresql"

    @property
    def table_schema(self) -> str | None:
        """The ``schema=`` argument for a table (``None`` on SQLite)."""
        return None if self.prefixed else self.schema

    def table(self, name: str) -> str:
        """The stored name of one of our tables: ``events`` or ``catentio_webhooks_events``."""
        return f"{self.schema}_{name}" if self.prefixed else name

    def index(self, name: str) -> str:
        """An index name; SQLite's are database-wide, so they carry the prefix there."""
        return f"{self.schema}_{name}" if self.prefixed else name

    def qualified(self, name: str) -> str:
        """The table as SQL names it: ``catentio_webhooks.events`` or its prefixed form."""
        return self.table(name) if self.prefixed else f"{self.schema}.{name}"

    def column(self, table: str, column: str) -> str:
        """A foreign key target such as ``catentio_webhooks.events.id``."""
        return f"{self.qualified(table)}.{column}"

    @property
    def version_table(self) -> str:
        """Alembic's version table name."""
        return self.table(VERSION_TABLE)

    @property
    def channel(self) -> str:
        """The PostgreSQL ``NOTIFY`` channel that says an event is waiting."""
        return self.schema


def bind(engine: Engine, schema: str = DEFAULT_SCHEMA) -> Engine:
    """Point ``engine`` (in place) at our tables in ``schema``, and return it.

    Sessions and sessionmakers already made from the engine see the change. Safe to call
    again; the last schema wins. Other entries of an existing ``schema_translate_map``
    are kept, so the host application's own mapping still works.
    """
    check_schema(schema)
    mapping = dict(engine.get_execution_options().get(_TRANSLATE) or {})
    mapping[DEFAULT_SCHEMA] = schema
    engine.update_execution_options(**{_TRANSLATE: mapping})
    if engine.dialect.name == "sqlite":
        _install_prefixer(engine)
    return engine


def namespace_of(bind: Engine | Connection) -> Namespace:
    """The namespace an engine or connection reaches (the default when never bound)."""
    mapping = bind.get_execution_options().get(_TRANSLATE) or {}
    return Namespace(schema=mapping.get(DEFAULT_SCHEMA, DEFAULT_SCHEMA), dialect=bind.dialect.name)


def _install_prefixer(engine: Engine) -> None:
    if not event.contains(engine, "before_cursor_execute", _prefix_statement):
        event.listen(engine, "before_cursor_execute", _prefix_statement, retval=True)


def _prefix_statement(
    connection: Connection,
    _cursor: Any,
    statement: str,
    parameters: Any,
    _context: Any,
    _executemany: bool,
) -> tuple[str, Any]:
    # SQLAlchemy has schema translation but no table-name translation, so on SQLite the
    # statement it renders (`catentio_webhooks.events`, or the configured schema, which
    # SQLite would take for an attached database) becomes `catentio_webhooks_events`.
    # Only a schema qualifier followed by a dot is rewritten, and schema names are plain
    # lowercase identifiers, so nothing else in a statement can match.
    schema = namespace_of(connection).schema
    return _qualifier(schema).sub(schema + "_", statement), parameters


def _qualifier(schema: str) -> re.Pattern[str]:
    pattern = _QUALIFIERS.get(schema)
    if pattern is None:
        pattern = _QUALIFIERS[schema] = re.compile(rf'(?<![\w"$])("?){schema}\1\.')
    return pattern


_QUALIFIERS: dict[str, re.Pattern[str]] = {}
