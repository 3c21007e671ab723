"""The SQL function ``<schema>.publish(...)``: publishing from any language, on PostgreSQL."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from outbox import ids, publish
from outbox.database import make_session_factory, normalize_url
from outbox.errors import ValidationError
from outbox.migrate import upgrade
from outbox.models import Event
from outbox.sqlstate import ERRORS
from tests.support.services import db_schema_of, engine_for
from worker.demo.receiver import Receiver
from worker.runtime import Runtime

pytestmark = pytest.mark.postgres

ID = re.compile(r"evt_[0-9abcdefghjkmnpqrstvwxyz]{26}")


def conninfo(url: str) -> str:
    """A libpq URL for a plain psycopg connection (as any non-Python producer has)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def migrated_pg(postgres_url: str) -> str:
    """A migrated PostgreSQL database of the test's own."""
    engine = engine_for(postgres_url)
    upgrade(engine)
    engine.dispose()
    return postgres_url


def call(connection: psycopg.Connection[Any], schema: str, *args: Any, **named: Any) -> str:
    """``SELECT <schema>.publish(...)`` the way a producer writes it."""
    placeholders = [sql.SQL("%s")] * len(args) + [
        sql.SQL("{} => %s").format(sql.Identifier(name)) for name in named
    ]
    query = sql.SQL("SELECT {}.publish({})").format(
        sql.Identifier(schema), sql.SQL(", ").join(placeholders)
    )
    row = connection.execute(query, [*args, *named.values()]).fetchone()
    assert row is not None
    return str(row[0])


def test_commit_delivers_and_rollback_sends_nothing(
    migrated_pg: str, make_runtime: Callable[..., Runtime], add_endpoint: Any, receiver: Receiver
) -> None:
    """A producer's transaction that calls publish() and commits is delivered and verified;
    one that rolls back leaves no event and sends nothing."""
    schema = db_schema_of(migrated_pg)
    runtime = make_runtime(migrated_pg)
    add_endpoint(runtime, receiver=receiver)
    with psycopg.connect(conninfo(migrated_pg)) as producer:
        with producer.transaction():
            producer.execute("CREATE TABLE runs (id text PRIMARY KEY)")
        with pytest.raises(RuntimeError), producer.transaction():
            producer.execute("INSERT INTO runs VALUES ('r_0')")
            rolled_back = call(producer, schema, "ws_a", "run.failed", json.dumps({"runId": "r_0"}))
            raise RuntimeError("the producer changes its mind")
        with producer.transaction():
            producer.execute("INSERT INTO runs VALUES ('r_1')")
            committed = call(
                producer, schema, "ws_a", "run.succeeded", json.dumps({"runId": "r_1"})
            )
    with runtime.running():
        assert receiver.wait_for(1, timeout=20)
        time.sleep(0.3)  # room for a second delivery, if one were wrongly coming
    (got,) = receiver.received()
    assert got.verified and got.headers["webhook-id"] == committed
    assert json.loads(got.body)["data"]["data"] == {"runId": "r_1"}
    with runtime.sessions() as session:
        assert session.get(Event, rolled_back) is None
        assert session.scalars(sa.select(Event.id)).all() == [committed]


def test_sql_and_python_publish_the_same_envelope(migrated_pg: str) -> None:
    """The same input through the SQL function and outbox.publish gives bodies that parse
    to the same envelope (fields and values), and ids that sort in publication order."""
    schema = db_schema_of(migrated_pg)
    engine = engine_for(migrated_pg)
    sessions = make_session_factory(engine)
    data = {"runId": "r_1", "nested": {"b": [1, 2.5, None, True], "a": 'é ✓ "q"'}, "n": 10**15}
    order: list[str] = []
    with psycopg.connect(conninfo(migrated_pg), autocommit=True) as producer:
        for turn in range(6):
            if turn % 2:
                order.append(
                    call(producer, schema, "ws_a", "run.succeeded", json.dumps(data), None, "req_1")
                )
            else:
                with sessions() as session, session.begin():
                    event = publish(
                        session,
                        workspace_id="ws_a",
                        type="run.succeeded",
                        data=data,
                        request_id="req_1",
                    )
                order.append(event.id)
            time.sleep(0.003)  # ids are ordered to the millisecond
    assert sorted(order) == order
    with sessions() as session:
        bodies = {e.id: json.loads(e.body) for e in session.scalars(sa.select(Event))}
    python, from_sql = bodies[order[0]], bodies[order[1]]
    for body, event_id in ((python, order[0]), (from_sql, order[1])):
        assert ID.fullmatch(event_id)
        assert list(body) == ["data", "error", "meta"]
        assert list(body["data"]) == ["id", "type", "workspaceId", "createdAt", "data"]
        assert body["data"]["id"] == event_id
        assert body["meta"]["timestamp"] == body["data"]["createdAt"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["data"]["createdAt"])
    for field in ("id", "createdAt"):
        python["data"].pop(field)
        from_sql["data"].pop(field)
    python["meta"].pop("timestamp")
    from_sql["meta"].pop("timestamp")
    assert python == from_sql
    assert from_sql["data"]["data"] == data and from_sql["meta"]["requestId"] == "req_1"
    engine.dispose()


def test_concurrent_calls_with_one_key_make_one_event(migrated_pg: str) -> None:
    """Eight producers racing with one idempotency key all get the same event id, and
    there is exactly one event."""
    schema = db_schema_of(migrated_pg)
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with psycopg.connect(conninfo(migrated_pg)) as producer, producer.transaction():
                barrier.wait(timeout=10)
                event_id = call(producer, schema, "ws_a", "run.succeeded", "{}", "run-1-done")
                time.sleep(0.05)  # hold the transaction open while the others arrive
                results.append(event_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=produce) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(results) == 8 and len(set(results)) == 1
    with psycopg.connect(conninfo(migrated_pg)) as check:
        query = sql.SQL("SELECT count(*) FROM {}.events").format(sql.Identifier(schema))
        assert check.execute(query).fetchone() == (1,)


BAD_INPUT = [
    pytest.param(("ws_a", "Run.Succeeded", "{}"), "22W01", id="type-grammar"),
    pytest.param(("ws_a", "x" * 129, "{}"), "22W01", id="type-too-long"),
    pytest.param(("ws_a", None, "{}"), "22W01", id="type-null"),
    pytest.param(("ws a", "run.succeeded", "{}"), "22W02", id="workspace"),
    pytest.param(("", "run.succeeded", "{}"), "22W02", id="workspace-empty"),
    pytest.param(("ws_a", "run.succeeded", "[1, 2]"), "22W03", id="data-array"),
    pytest.param(("ws_a", "run.succeeded", '"text"'), "22W03", id="data-string"),
    pytest.param(("ws_a", "run.succeeded", None), "22W03", id="data-null"),
    pytest.param(
        ("ws_a", "run.succeeded", json.dumps({"blob": "x" * 300_000})), "22W04", id="oversized"
    ),
    pytest.param(("ws_a", "run.succeeded", "{}", ""), "22W05", id="empty-key"),
    pytest.param(("ws_a", "run.succeeded", "{}", None, "r" * 256), "22W05", id="long-request"),
]


@pytest.fixture(scope="module")
def shared_pg(postgres_server: str) -> Iterator[str]:
    """One migrated schema for the read-only-in-effect bad-input cases (they write nothing),
    so eleven of them cost one migration; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = sa.engine.make_url(str(normalize_url(postgres_server))).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    rendered = url.render_as_string(hide_password=False)
    engine = engine_for(rendered)
    upgrade(engine)
    engine.dispose()
    try:
        yield rendered
    finally:
        with psycopg.connect(conninfo(rendered), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.mark.parametrize(("args", "sqlstate"), BAD_INPUT)
def test_bad_input_raises_the_documented_sqlstate_and_writes_nothing(
    shared_pg: str, args: tuple[Any, ...], sqlstate: str
) -> None:
    """Bad input raises its documented SQLSTATE with the message outbox.publish gives for
    the same input, and the event table stays empty."""
    migrated_pg = shared_pg
    schema = db_schema_of(migrated_pg)
    with psycopg.connect(conninfo(migrated_pg)) as producer:
        with pytest.raises(psycopg.Error) as raised, producer.transaction():
            call(producer, schema, *args)
        assert raised.value.sqlstate == sqlstate
        message = raised.value.diag.message_primary
        query = sql.SQL("SELECT count(*) FROM {}.events").format(sql.Identifier(schema))
        assert producer.execute(query).fetchone() == (0,)
    python_error = ERRORS[sqlstate]
    workspace, type_, data, *rest = (*args, None, None)
    engine = engine_for(migrated_pg)
    with make_session_factory(engine)() as session, pytest.raises(ValidationError) as python:
        publish(
            session,
            workspace_id=workspace,
            type=type_,
            data=json.loads(data) if data is not None else None,  # type: ignore[arg-type]
            idempotency_key=rest[0],
            request_id=rest[1],
        )
    engine.dispose()
    assert isinstance(python.value, python_error)
    if sqlstate == "22W03":  # the type is named in each language's terms: array / list
        assert message.startswith("data must be a JSON object, not ")
        assert str(python.value).startswith("data must be a JSON object, not ")
    elif sqlstate == "22W04":  # jsonb renders with spaces, so the sizes differ a little
        for text in (message, str(python.value)):
            assert re.fullmatch(r"rendered body is \d+ bytes, over the 262144 limit", text)
    else:
        assert message == str(python.value)


def test_same_key_for_another_type_is_refused(migrated_pg: str) -> None:
    """Reusing an idempotency key for another event type raises 22W06, as in Python."""
    schema = db_schema_of(migrated_pg)
    with psycopg.connect(conninfo(migrated_pg), autocommit=True) as producer:
        first = call(producer, schema, "ws_a", "run.succeeded", "{}", "k")
        assert call(producer, schema, "ws_a", "run.succeeded", '{"x": 1}', "k") == first
        with pytest.raises(psycopg.Error) as raised:
            call(producer, schema, "ws_a", "run.failed", "{}", "k")
    assert raised.value.sqlstate == "22W06"
    assert first in str(raised.value.diag.message_primary)


@pytest.fixture
def producer_role(migrated_pg: str) -> Iterator[str]:
    """A login role granted exactly what docs/sharing-a-database.md says, dropped after."""
    schema = db_schema_of(migrated_pg)
    role = f"producer_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(conninfo(migrated_pg), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(schema), sql.Identifier(role)
            )
        )
        admin.execute(
            sql.SQL(
                "GRANT EXECUTE ON FUNCTION {}.publish(text, text, jsonb, text, text) TO {}"
            ).format(sql.Identifier(schema), sql.Identifier(role))
        )
    try:
        yield role
    finally:
        with psycopg.connect(conninfo(migrated_pg), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_role_with_only_the_documented_grants_can_publish_and_read_nothing(
    migrated_pg: str, producer_role: str
) -> None:
    """USAGE on the schema and EXECUTE on publish() are enough to publish; the same role
    cannot read deliveries, endpoints (secrets) or events, nor write events directly."""
    schema = db_schema_of(migrated_pg)
    url = sa.engine.make_url(conninfo(migrated_pg)).set(username=producer_role)
    as_producer = url.render_as_string(hide_password=False)
    with psycopg.connect(as_producer, autocommit=True) as producer:
        event_id = call(producer, schema, "ws_a", "run.succeeded", "{}")
        assert ID.fullmatch(event_id)
        for statement in (
            "SELECT * FROM {}.deliveries",
            "SELECT secrets FROM {}.endpoints",
            "SELECT body FROM {}.events",
            "INSERT INTO {}.events (id) VALUES ('evt_x')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                producer.execute(sql.SQL(statement).format(sql.Identifier(schema)))
    with psycopg.connect(conninfo(migrated_pg)) as admin:
        query = sql.SQL("SELECT id FROM {}.events").format(sql.Identifier(schema))
        assert admin.execute(query).fetchall() == [(event_id,)]


def test_the_id_holds_the_publish_millisecond(migrated_pg: str) -> None:
    """An id's leading characters encode createdAt's millisecond, as outbox.ids does, so
    a SQL id and a Python id made in the same millisecond share their time prefix."""
    schema = db_schema_of(migrated_pg)
    with psycopg.connect(conninfo(migrated_pg), autocommit=True) as producer:
        event_id = call(producer, schema, "ws_a", "run.succeeded", "{}")
        query = sql.SQL("SELECT body FROM {}.events").format(sql.Identifier(schema))
        row = producer.execute(query).fetchone()
    assert row is not None
    created = json.loads(row[0])["data"]["createdAt"]
    moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
    expected = ids.new_id(ids.EVENT, now_ms=int(moment.timestamp() * 1000))
    assert event_id[:14] == expected[:14]
