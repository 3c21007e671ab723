"""Living in the host's database: our own schema (or prefix) and our own migration history."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from click.testing import CliRunner
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from outbox import bind, ids, publish
from outbox.database import make_engine, make_session_factory, normalize_url
from outbox.errors import InvalidSchemaName
from outbox.migrate import current_revision, head_revision, upgrade
from outbox.models import Delivery, Endpoint, Event
from outbox.namespace import DEFAULT_SCHEMA, check_schema, namespace_of
from worker.cli import main
from worker.errors import ConfigurationError
from worker.settings import Settings

LEGACY = Path(__file__).with_name("legacy_migrations")


@dataclass
class HostDatabase:
    """A database that belongs to an application: its own tables and Alembic history."""

    url: str
    schema: str  # ours, distinct from where the host's tables live

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.url, "CATENTIO_DB_SCHEMA": self.schema}

    def host_engine(self) -> sa.Engine:
        return sa.create_engine(normalize_url(self.url))


@pytest.fixture
def host_database(database_url: str) -> Iterator[HostDatabase]:
    """The host application's tables in the URL's default schema (PostgreSQL: a fresh one
    on the search_path) and ours in another, both dropped afterwards."""
    if make_url(database_url).get_backend_name() == "sqlite":
        yield HostDatabase(database_url, f"hooks_{uuid.uuid4().hex[:6]}")
        return
    host = f"host_{uuid.uuid4().hex[:12]}"
    ours = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(normalize_url(database_url))
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{host}"'))
    url = make_url(str(normalize_url(database_url))).update_query_dict(
        {"options": f"-csearch_path={host}"}
    )
    try:
        yield HostDatabase(url.render_as_string(hide_password=False), ours)
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{host}" CASCADE'))
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{ours}" CASCADE'))
        admin.dispose()


def _make_host_application(host: HostDatabase) -> None:
    engine = host.host_engine()
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT)"))
        connection.execute(sa.text("INSERT INTO events VALUES (1, 'the host''s own')"))
        connection.execute(
            sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        )
        # A revision id that is also one of ours: only our tables' shape may decide.
        connection.execute(sa.text("INSERT INTO alembic_version VALUES ('0001')"))
    engine.dispose()


def _host_rows(host: HostDatabase) -> tuple[list[tuple[int, str]], list[str]]:
    engine = host.host_engine()
    with engine.connect() as connection:
        events = [tuple(r) for r in connection.execute(sa.text("SELECT id, name FROM events"))]
        versions = list(connection.execute(sa.text("SELECT * FROM alembic_version")).scalars())
    engine.dispose()
    return events, versions  # type: ignore[return-value]


def test_db_upgrade_beside_a_host_application_touches_nothing_of_its(
    host_database: HostDatabase,
) -> None:
    """`db upgrade` in a database with the host's own `events` table and `alembic_version`
    succeeds; both are intact afterwards and `db current` reports only our revision."""
    _make_host_application(host_database)
    runner = CliRunner()
    before = runner.invoke(main, ["db", "current"], env=host_database.env())
    assert before.output.strip() == f"database: empty; code: {head_revision()}"

    upgraded = runner.invoke(main, ["db", "upgrade"], env=host_database.env())
    assert upgraded.exit_code == 0, upgraded.output
    again = runner.invoke(main, ["db", "upgrade"], env=host_database.env())
    assert again.exit_code == 0, again.output
    current = runner.invoke(main, ["db", "current"], env=host_database.env())

    assert current.output.strip() == f"database: {head_revision()}; code: {head_revision()}"
    assert _host_rows(host_database) == ([(1, "the host's own")], ["0001"])
    engine = make_engine(host_database.url, schema=host_database.schema)
    ours = namespace_of(engine)
    with make_session_factory(engine)() as session, session.begin():
        publish(session, workspace_id="ws_1", type="run.succeeded", data={"runId": "r_1"})
    with make_session_factory(engine)() as session:
        assert session.scalars(sa.select(Event.type)).all() == ["run.succeeded"]
    inspector = sa.inspect(engine)
    assert inspector.has_table(ours.table("events"), schema=ours.table_schema)
    assert inspector.has_table(ours.version_table, schema=ours.table_schema)
    engine.dispose()


def test_sqlite_tables_and_indexes_carry_the_prefix(sqlite_url: str) -> None:
    """On SQLite every table and index of ours is `<schema>_…`, the history included."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with engine.connect() as connection:
        names = connection.execute(
            sa.text("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        ).scalars()
        assert all(name.startswith(f"{DEFAULT_SCHEMA}_") for name in names)
        tables = set(
            connection.execute(
                sa.text("SELECT name FROM sqlite_master WHERE type = 'table'")
            ).scalars()
        )
    assert {f"{DEFAULT_SCHEMA}_{t}" for t in ("events", "alembic_version")} <= tables
    engine.dispose()


def test_schema_setting_is_read_and_checked() -> None:
    """CATENTIO_DB_SCHEMA names our schema; a name that is not a plain identifier is
    refused, naming the variable."""
    assert Settings.from_env({}).db_schema == DEFAULT_SCHEMA
    assert Settings.from_env({"CATENTIO_DB_SCHEMA": "hooks"}).db_schema == "hooks"
    for bad in ("Hooks", "1hooks", "hooks;drop", "pg_hooks", "x" * 49):
        with pytest.raises(ConfigurationError, match="CATENTIO_DB_SCHEMA"):
            Settings.from_env({"CATENTIO_DB_SCHEMA": bad})
    with pytest.raises(InvalidSchemaName):
        check_schema("has space")


def test_publish_on_the_producers_own_engine_after_bind(host_database: HostDatabase) -> None:
    """A producer's own engine and session reach our tables after one `bind` call, and its
    own tables stay where they were, in the same transaction."""
    ours = make_engine(host_database.url, schema=host_database.schema)
    upgrade(ours)
    ours.dispose()
    engine = sa.create_engine(normalize_url(host_database.url))  # the producer's engine
    bind(engine, schema=host_database.schema)
    runs = sa.Table("runs", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    runs.create(engine)
    with Session(engine) as session, session.begin():
        session.execute(runs.insert().values(id=7))
        publish(session, workspace_id="ws_1", type="run.succeeded", data={"runId": 7})
    with Session(engine) as session:
        assert session.scalars(sa.select(Event.workspace_id)).all() == ["ws_1"]
        assert session.execute(sa.select(runs.c.id)).scalars().all() == [7]
    assert sa.inspect(engine).has_table("runs")
    engine.dispose()


def _build_legacy_installation(host: HostDatabase) -> dict[str, str]:
    """Today's schema, made by revisions 0001-0002 as they were, with one row per table."""
    engine = host.host_engine()
    config = Config()
    config.set_main_option("script_location", str(LEGACY))
    now = datetime.now(UTC)
    rows = {
        "endpoint": ids.new_id(ids.ENDPOINT),
        "event": ids.new_id(ids.EVENT),
        "delivery": ids.new_id(ids.DELIVERY),
        "attempt": ids.new_id(ids.ATTEMPT),
    }
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.execute(
            sa.text(
                "INSERT INTO endpoints (id, workspace_id, url, event_types, scheme, secrets, "
                "headers, enabled, paused, consecutive_failures, created_at, updated_at) "
                "VALUES (:id, 'ws_1', 'https://example.invalid/h', '[\"*\"]', 'v1', '[]', '{}', "
                "true, false, 0, :now, :now)"
            ),
            {"id": rows["endpoint"], "now": now},
        )
        connection.execute(
            sa.text(
                "INSERT INTO events (id, workspace_id, type, body, idempotency_key, created_at) "
                "VALUES (:id, 'ws_1', 'run.succeeded', '{}', 'key-1', :now)"
            ),
            {"id": rows["event"], "now": now},
        )
        connection.execute(
            sa.text(
                "INSERT INTO deliveries (id, event_id, endpoint_id, workspace_id, event_type, "
                "status, attempt_count, cycle_attempts, next_trigger, created_at, updated_at) "
                "VALUES (:id, :event, :endpoint, 'ws_1', 'run.succeeded', 'succeeded', 1, 1, "
                "'scheduled', :now, :now)"
            ),
            {
                "id": rows["delivery"],
                "event": rows["event"],
                "endpoint": rows["endpoint"],
                "now": now,
            },
        )
        connection.execute(
            sa.text(
                "INSERT INTO attempts (id, delivery_id, number, trigger, url, started_at, "
                "duration_ms, request_headers, response_truncated, outcome) VALUES (:id, "
                ":delivery, 1, 'scheduled', 'https://example.invalid/h', :now, 1.5, '{}', "
                "false, 'succeeded')"
            ),
            {"id": rows["attempt"], "delivery": rows["delivery"], "now": now},
        )
    engine.dispose()
    return rows


def test_an_existing_installation_moves_into_the_namespace_without_losing_a_row(
    host_database: HostDatabase,
) -> None:
    """Tables made by today's 0001-0002 in the default schema, with the default
    `alembic_version`, are moved into our namespace by `upgrade`, rows and constraints
    intact; the old version table goes, and our history continues from 0002."""
    rows = _build_legacy_installation(host_database)
    engine = make_engine(host_database.url, schema=host_database.schema)
    assert current_revision(engine) is None

    upgrade(engine)

    assert current_revision(engine) == head_revision()
    with make_session_factory(engine)() as session:
        delivery = session.get(Delivery, rows["delivery"])
        assert delivery is not None and delivery.event_id == rows["event"]
        assert session.get(Endpoint, rows["endpoint"]) is not None
        event = session.get(Event, rows["event"])
        assert event is not None and event.idempotency_key == "key-1"
    host_engine = host_database.host_engine()
    host_tables = set(sa.inspect(host_engine).get_table_names())
    host_engine.dispose()
    assert not host_tables & {"events", "endpoints", "deliveries", "attempts", "alembic_version"}
    # The unique constraint and the cascading foreign keys came along.
    with make_session_factory(engine)() as session, session.begin():
        again = publish(
            session, workspace_id="ws_1", type="run.succeeded", data={}, idempotency_key="key-1"
        )
        assert again.id == rows["event"]
        session.execute(sa.delete(Event).where(Event.id == rows["event"]))
    with make_session_factory(engine)() as session:
        assert session.get(Delivery, rows["delivery"]) is None
    engine.dispose()
