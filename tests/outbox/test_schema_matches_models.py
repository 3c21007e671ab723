"""The migrated schema is the one the models describe: every table, column (its
nullability and kind of type) and index the models declare exists after ``db upgrade``,
and nothing more — so a column added to a model without a revision (or the reverse)
fails here, not in production."""

from __future__ import annotations

import sqlalchemy as sa

from outbox.models import Base
from outbox.namespace import Namespace
from tests.support.services import db_schema_of, engine_for

# The kinds of type that must agree; a model's String(40) may reflect as VARCHAR(40),
# a JSON variant as JSONB: compare families, not spellings.
FAMILIES: tuple[tuple[type[sa.types.TypeEngine[object]], str], ...] = (
    (sa.Boolean, "bool"),
    (sa.Integer, "int"),
    (sa.Float, "float"),
    (sa.DateTime, "time"),
    (sa.JSON, "json"),
    (sa.String, "text"),
)


def _family(column_type: sa.types.TypeEngine[object]) -> str:
    if type(column_type).__name__.upper() in ("JSONB", "JSON"):
        return "json"
    for kind, name in FAMILIES:
        if isinstance(column_type, kind):
            return name
    # A TypeDecorator (the models' UTC datetime, JSON type): its implementation.
    impl = getattr(column_type, "impl", None)
    if impl is not None and impl is not column_type:
        return _family(impl)
    if isinstance(column_type, sa.types.NullType):
        return "null"
    raise AssertionError(f"no family for {column_type!r}")


def _model_family(column: sa.Column[object], dialect: sa.Dialect) -> str:
    return _family(column.type.dialect_impl(dialect))


def schema_differences(engine: sa.Engine, schema: str) -> list[str]:
    """What differs between the models and the database's tables in ``schema``; empty
    when they agree."""
    dialect = engine.dialect
    ns = Namespace(schema, dialect.name)
    inspector = sa.inspect(engine)
    differences: list[str] = []
    stored_tables = set(inspector.get_table_names(schema=ns.table_schema))
    ours = {ns.table(table.name) for table in Base.metadata.tables.values()}
    differences += [f"table {name} missing" for name in sorted(ours - stored_tables)]
    differences += [
        f"table {name} is in no model"
        for name in sorted(stored_tables - ours - {ns.version_table})
        if name.startswith(f"{schema}_") or not ns.prefixed
    ]
    for table in Base.metadata.tables.values():
        if ns.table(table.name) not in stored_tables:
            continue
        stored = {
            column["name"]: column
            for column in inspector.get_columns(ns.table(table.name), schema=ns.table_schema)
        }
        declared = {column.name: column for column in table.columns}
        name = table.name
        differences += [f"{name}.{c} only in the database" for c in set(stored) - set(declared)]
        differences += [f"{name}.{c} only in the models" for c in set(declared) - set(stored)]
        for name in set(stored) & set(declared):
            column = declared[name]
            if stored[name]["nullable"] != column.nullable:
                differences.append(f"{table.name}.{name}: nullable differs")
            want = _model_family(column, dialect)
            got = _family(stored[name]["type"])
            # SQLite keeps JSON as text and may report it so.
            if got != want and not (ns.prefixed and want == "json"):
                differences.append(f"{table.name}.{name}: {got} stored, {want} declared")
        # By the columns they cover: ``index=True`` columns are named by the naming
        # convention in the models and explicitly in the revisions.
        stored_indexes = {
            tuple(index["column_names"])
            for index in inspector.get_indexes(ns.table(table.name), schema=ns.table_schema)
        }
        for index in table.indexes:
            if tuple(column.name for column in index.columns) not in stored_indexes:
                differences.append(f"index {index.name} missing")
    return sorted(differences)


def test_the_migrated_schema_is_the_models_schema(migrated: str) -> None:
    engine = engine_for(migrated)
    try:
        assert schema_differences(engine, db_schema_of(migrated)) == []
    finally:
        engine.dispose()


def test_a_column_missing_from_the_database_is_a_difference(migrated: str) -> None:
    """The comparison is not vacuous: drop a column the models declare and it says so."""
    engine = engine_for(migrated)
    schema = db_schema_of(migrated)
    ns = Namespace(schema, engine.dialect.name)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(f"ALTER TABLE {ns.qualified('events')} DROP COLUMN trace_context")
            )
        assert schema_differences(engine, schema) == ["events.trace_context only in the models"]
    finally:
        engine.dispose()
