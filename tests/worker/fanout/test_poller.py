"""The poller: fan-out by workspace and filter, claiming, dispatch after commit, sweeping."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, text, update

from outbox import Delivery, DeliveryStatus, Endpoint, Event, publish
from outbox.database import make_session_factory
from tests.support.clock import ManualClock
from tests.support.services import engine_for
from worker.endpoints.filters import filter_matches
from worker.fanout.deliveries import UNNEST_FROM
from worker.fanout.poller import Poller

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def sessions(migrated: str) -> Any:
    engine = engine_for(migrated)
    yield make_session_factory(engine)
    engine.dispose()


def endpoint(
    session: Any, ep_id: str, workspace: str, types: list[str], *, enabled: bool = True
) -> None:
    session.add(
        Endpoint(
            id=ep_id,
            workspace_id=workspace,
            url="https://example.invalid/h",
            event_types=types,
            scheme="v1",
            secrets=[],
            headers={},
            enabled=enabled,
            paused=False,
            disabled_reason=None if enabled else "by test",
            consecutive_failures=0,
            created_at=T0,
            updated_at=T0,
        )
    )


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, ids: Sequence[str]) -> None:
        with self.lock:
            self.calls.append(list(ids))
        if self.fail:
            raise ConnectionError("broker down")

    @property
    def ids(self) -> list[str]:
        return [i for call in self.calls for i in call]


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("*", "run.succeeded", True),
        ("run.*", "run.succeeded", True),
        ("run.*", "run.step.done", True),
        ("run.*", "run", False),
        ("run.*", "runs.x", False),
        ("run.succeeded", "run.succeeded", True),
        ("run.succeeded", "run.failed", False),
    ],
)
def test_filter_matching(pattern: str, event_type: str, expected: bool) -> None:
    """Exact types, prefix.* and * match as documented."""
    assert filter_matches(pattern, event_type) is expected


def test_fan_out_by_workspace_and_filter(sessions: Any) -> None:
    """Each event gets one delivery per matching endpoint of its own workspace; disabled
    endpoints get a skipped delivery; dispatch receives only pending ones, after commit."""
    with sessions() as session, session.begin():
        endpoint(session, "ep_all", "ws_a", ["*"])
        endpoint(session, "ep_run", "ws_a", ["run.*"])
        endpoint(session, "ep_exact", "ws_a", ["project.paused"])
        endpoint(session, "ep_off", "ws_a", ["*"], enabled=False)
        endpoint(session, "ep_other", "ws_b", ["*"])
        run = publish(session, workspace_id="ws_a", type="run.succeeded", data={})
        paused = publish(session, workspace_id="ws_a", type="project.paused", data={})
        lonely = publish(session, workspace_id="ws_c", type="run.succeeded", data={})

    seen_committed: list[int] = []

    def dispatch(ids: Sequence[str]) -> None:
        with sessions() as session:  # the rows must already be visible to others
            seen_committed.append(session.scalar(select(func.count()).where(Delivery.id.in_(ids))))
        recorder(ids)

    recorder = Recorder()
    result = Poller(session_factory=sessions, dispatch=dispatch, clock=ManualClock(T0)).poll_once()
    assert (result.events, result.deliveries, result.skipped) == (3, 4, 2)
    with sessions() as session:
        pairs = {(d.event_id, d.endpoint_id, d.status) for d in session.scalars(select(Delivery))}
        waiting = session.scalar(select(func.count()).where(Event.dispatched_at.is_(None)))
    assert pairs == {
        (run.id, "ep_all", "pending"),
        (run.id, "ep_run", "pending"),
        (run.id, "ep_off", "skipped"),
        (paused.id, "ep_all", "pending"),
        (paused.id, "ep_exact", "pending"),
        (paused.id, "ep_off", "skipped"),
    }
    assert not any(p[0] == lonely.id for p in pairs)
    assert waiting == 0
    assert len(recorder.ids) == 4 and seen_committed == [4]


def test_a_poll_takes_its_events_and_their_subscribers_in_one_statement(sessions: Any) -> None:
    """On PostgreSQL taking a batch and reading its workspaces' endpoints is one round
    trip (then the INSERT); SQLite, which has no UPDATE inside a CTE, takes two. Events
    of several workspaces each reach their own workspace's endpoints."""
    with sessions() as session, session.begin():
        endpoint(session, "ep_b2", "ws_b", ["*"])
        endpoint(session, "ep_b1", "ws_b", ["run.*"])
        endpoint(session, "ep_a", "ws_a", ["*"])
        endpoint(session, "ep_idle", "ws_idle", ["*"])
        published = [
            publish(session, workspace_id=ws, type="run.succeeded", data={"n": n})
            for n, ws in enumerate(["ws_b", "ws_a", "ws_b", "ws_none"])
        ]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        recorder = Recorder()
        result = Poller(session_factory=sessions, dispatch=recorder).poll_once()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    postgres = engine.dialect.name == "postgresql"
    assert statements == (
        ["WITH", "INSERT"] if postgres else ["BEGIN", "UPDATE", "SELECT", "INSERT"]
    )
    assert (result.events, result.deliveries) == (4, 5)
    with sessions() as session:
        made = session.execute(
            select(Delivery.event_id, Delivery.endpoint_id).order_by(
                Delivery.created_at, Delivery.id
            )
        ).all()
    by_event = {e.id: sorted(ep for ev, ep in made if ev == e.id) for e in published}
    assert list(by_event.values()) == [["ep_b1", "ep_b2"], ["ep_a"], ["ep_b1", "ep_b2"], []]
    assert len(recorder.ids) == 5


def test_a_wide_fan_out_is_inserted_whole_with_every_column(sessions: Any) -> None:
    """One event to 30 endpoints (PostgreSQL binds them as arrays from
    ``UNNEST_FROM`` rows on): one INSERT, every row as ``delivery_row`` made it, the
    disabled endpoint's kept as skipped with its note."""
    with sessions() as session, session.begin():
        for i in range(29):
            endpoint(session, f"ep_{i:02d}", "ws_wide", ["run.*"])
        endpoint(session, "ep_off", "ws_wide", ["*"], enabled=False)
        event_id = publish(session, workspace_id="ws_wide", type="run.failed", data={}).id
    assert UNNEST_FROM <= 30
    inserts: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT"):
            inserts.append(statement)

    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        result = Poller(
            session_factory=sessions, dispatch=Recorder(), clock=ManualClock(T0)
        ).poll_once()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert (result.deliveries, result.skipped) == (29, 1) and len(inserts) == 1
    assert ("unnest" in inserts[0]) is (engine.dialect.name == "postgresql")
    with sessions() as session:
        rows = {d.endpoint_id: d for d in session.scalars(select(Delivery))}
    assert len(rows) == 30
    for endpoint_id, d in rows.items():
        assert (d.event_id, d.workspace_id, d.event_type) == (event_id, "ws_wide", "run.failed")
        assert (d.attempt_count, d.cycle_attempts, d.next_trigger) == (0, 0, "scheduled")
        assert d.created_at == d.updated_at == T0
        if endpoint_id == "ep_off":
            assert d.status == "skipped" and d.next_attempt_at is None and d.rung_at is None
            assert d.completed_at == T0 and d.last_error == "endpoint disabled: by test"
        else:
            assert d.status == "pending" and d.next_attempt_at == d.rung_at == T0
            assert d.completed_at is None and d.last_error is None


def test_poll_with_nothing_waiting_dispatches_nothing(sessions: Any) -> None:
    """An empty outbox is a cheap no-op."""
    recorder = Recorder()
    result = Poller(session_factory=sessions, dispatch=recorder).poll_once()
    assert result.events == 0 and recorder.calls == []


def test_two_pollers_never_duplicate_or_skip(sessions: Any) -> None:
    """Two pollers draining the same outbox at once create exactly one delivery per
    (event, endpoint) and leave no event waiting."""
    with sessions() as session, session.begin():
        for i in range(3):
            endpoint(session, f"ep_{i}", "ws_a", ["*"])
        for i in range(400):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i})
    recorders = [Recorder(), Recorder()]
    errors: list[BaseException] = []

    def drain(recorder: Recorder) -> None:
        poller = Poller(session_factory=sessions, dispatch=recorder, batch_size=25)
        try:
            while poller.poll_once().events:
                pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(r,)) for r in recorders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    dispatched = recorders[0].ids + recorders[1].ids
    assert len(dispatched) == len(set(dispatched)) == 1200
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 1200
        assert session.scalar(select(func.count()).where(Event.dispatched_at.is_(None))) == 0


def test_failed_dispatch_is_rung_again_by_the_sweeper(sessions: Any) -> None:
    """A broker outage at dispatch loses nothing: the rows stay pending and the sweeper
    rings them once the bell has gone unanswered for sweep_after."""
    clock = ManualClock(T0)
    with sessions() as session, session.begin():
        endpoint(session, "ep_1", "ws_a", ["*"])
        publish(session, workspace_id="ws_a", type="run.succeeded", data={}, clock=clock)
    down = Recorder(fail=True)
    Poller(session_factory=sessions, dispatch=down, clock=clock).poll_once()
    assert len(down.ids) == 1
    up = Recorder()
    poller = Poller(
        session_factory=sessions, dispatch=up, clock=clock, sweep_after=timedelta(seconds=30)
    )
    assert poller.sweep_once() == 0  # too early: the message may still be on its way
    clock.now += timedelta(seconds=31)
    assert poller.sweep_once() == 1
    assert up.ids == down.ids
    assert poller.sweep_once() == 0  # just rung
    clock.now += timedelta(seconds=31)
    assert poller.sweep_once() == 1


def test_sweeper_leaves_leased_future_and_finished_deliveries(sessions: Any) -> None:
    """Only pending, due and unleased deliveries are rung."""
    clock = ManualClock(T0)
    with sessions() as session, session.begin():
        endpoint(session, "ep_1", "ws_a", ["*"])
        # The leased one on an endpoint of its own: an endpoint with a delivery in
        # flight has its due ones pulled by the worker holding it, not rung.
        endpoint(session, "ep_0", "ws_0", ["*"])
        publish(session, workspace_id="ws_0", type="run.succeeded", data={}, clock=clock)
        for _ in range(3):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={}, clock=clock)
    Poller(session_factory=sessions, dispatch=Recorder(), clock=clock).poll_once()
    clock.now += timedelta(minutes=5)
    with sessions() as session, session.begin():
        rows = list(session.scalars(select(Delivery).order_by(Delivery.endpoint_id, Delivery.id)))
        rows[0].lease_until = clock.now + timedelta(minutes=1)
        rows[1].next_attempt_at = clock.now + timedelta(hours=1)
        rows[2].status = DeliveryStatus.SUCCEEDED
        due = rows[3].id
    recorder = Recorder()
    Poller(session_factory=sessions, dispatch=recorder, clock=clock).sweep_once()
    assert recorder.ids == [due]


def test_the_sweeper_does_not_ring_again_what_may_still_be_queued(sessions: Any) -> None:
    """With the broker's queue length known, a delivery is rung again only once the
    queue has been seen empty after its ring: while a backlog drains, the deliveries
    still waiting in it are not multiplied; once drained, a lost one is rung."""
    clock = ManualClock(T0)
    with sessions() as session, session.begin():
        endpoint(session, "ep_1", "ws_a", ["*"])
        for _ in range(3):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={}, clock=clock)
    queued = [3]
    recorder = Recorder()
    poller = Poller(
        session_factory=sessions,
        dispatch=recorder,
        clock=clock,
        sweep_after=timedelta(seconds=30),
        waiting=lambda: queued[0],
    )
    poller.poll_once()
    clock.now += timedelta(minutes=5)
    assert poller.sweep_once() == 0  # never seen empty: all three may still be queued
    queued[0] = 2
    clock.now += timedelta(minutes=5)
    assert poller.sweep_once() == 0  # a long queue draining: nothing is rung again
    queued[0] = 0
    assert poller.sweep_once() == 3  # drained and still pending: lost, rung again
    queued[0] = 5  # a new backlog: what was rung just now may be in it
    clock.now += timedelta(minutes=5)
    assert poller.sweep_once() == 0
    queued[0] = 0
    assert poller.sweep_once() == 3
    assert len(recorder.ids) == 9


def test_a_queue_length_that_cannot_be_read_leaves_the_sweeper_as_it_was(sessions: Any) -> None:
    """The broker failing to say how long its queue is must not stop the sweeper."""
    clock = ManualClock(T0)
    with sessions() as session, session.begin():
        endpoint(session, "ep_1", "ws_a", ["*"])
        publish(session, workspace_id="ws_a", type="run.succeeded", data={}, clock=clock)

    def unreadable() -> int:
        raise ConnectionError("redis is gone")

    poller = Poller(
        session_factory=sessions,
        dispatch=Recorder(),
        clock=clock,
        sweep_after=timedelta(seconds=30),
        waiting=unreadable,
    )
    poller.poll_once()
    clock.now += timedelta(seconds=31)
    assert poller.sweep_once() == 1


def test_poll_loop_keeps_running_through_database_errors() -> None:
    """A database error in the loop is logged and retried; the loop only ends on stop."""
    calls = {"n": 0}
    stop = threading.Event()

    class Broken(Poller):
        def poll_once(self) -> Any:
            calls["n"] += 1
            if calls["n"] >= 3:
                stop.set()
            from sqlalchemy.exc import OperationalError

            raise OperationalError("select", {}, Exception("server closed the connection"))

    Broken(session_factory=None, dispatch=Recorder()).run(stop, interval=0.01)  # type: ignore[arg-type]
    assert calls["n"] == 3


def test_concurrent_migrations_take_turns(postgres_url: str) -> None:
    """Two hosts running `db upgrade` at once both succeed (advisory lock)."""
    from outbox.migrate import current_revision, head_revision, upgrade

    engines = [engine_for(postgres_url) for _ in range(2)]
    errors: list[BaseException] = []

    def migrate(engine: Any) -> None:
        try:
            upgrade(engine)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert current_revision(engines[0]) == head_revision()
    for engine in engines:
        engine.dispose()


def test_the_sweeper_leaves_an_endpoint_served_a_moment_ago(sessions: Any) -> None:
    """Nothing in flight, but an attempt recorded within ``sweep_after`` (a worker between
    recording a batch and pulling the next): its due deliveries are that worker's; once
    the endpoint has been quiet for ``sweep_after``, they are rung again."""
    clock = ManualClock(T0)
    with sessions() as session, session.begin():
        endpoint(session, "ep_1", "ws_a", ["*"])
        publish(session, workspace_id="ws_a", type="run.succeeded", data={}, clock=clock)
    Poller(session_factory=sessions, dispatch=Recorder(), clock=clock).poll_once()
    poller = Poller(
        session_factory=sessions,
        dispatch=(recorder := Recorder()),
        clock=clock,
        sweep_after=timedelta(seconds=30),
    )
    clock.now += timedelta(seconds=31)
    for stamp in ("last_success_at", "last_failure_at"):
        with sessions() as session, session.begin():
            row = session.get_one(Endpoint, "ep_1")
            row.last_success_at = row.last_failure_at = None
            setattr(row, stamp, clock.now - timedelta(seconds=1))
        assert poller.sweep_once() == 0, stamp
    clock.now += timedelta(seconds=30)
    assert poller.sweep_once() == 1 and len(recorder.ids) == 1


def most_rows_read(
    engine: Any, statement: str, parameters: Any, *, before: str | None = None
) -> tuple[int, Any]:
    """PostgreSQL: the most rows any node of ``statement``'s plan read (``EXPLAIN
    ANALYZE`` of it, after ``before`` in the same transaction, rolled back), and the
    plan."""
    with engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        if before is not None:
            cursor.execute(before)
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        row = cursor.fetchone()
        connection.rollback()
    assert row is not None
    (document,) = row
    plan = document if isinstance(document, list) else json.loads(document)

    def nodes(node: dict[str, Any]) -> Any:
        yield node
        for child in node.get("Plans", ()):
            yield from nodes(child)

    return max(n["Actual Rows"] * n["Actual Loops"] for n in nodes(plan[0]["Plan"])), plan


def test_a_sweep_reads_nothing_of_a_backlog_its_worker_is_draining(postgres_url: str) -> None:
    """PostgreSQL: the endpoint's conditions are decided before its deliveries are read,
    so a sweep beside a long backlog whose endpoint has a delivery in flight rings only
    the quiet endpoint's forgotten ones, and no step of its plan reads more rows than
    that (asked of every pending delivery, it read the whole backlog on every sweep)."""
    from outbox.migrate import upgrade

    engine = engine_for(postgres_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    backlog = 2000
    clock = ManualClock(T0)
    try:
        with sessions() as session, session.begin():
            endpoint(session, "ep_busy", "ws_a", ["busy"])
            endpoint(session, "ep_quiet", "ws_a", ["quiet"])
            for n in range(backlog):
                publish(session, workspace_id="ws_a", type="busy", data={"n": n}, clock=clock)
            for n in range(3):
                publish(session, workspace_id="ws_a", type="quiet", data={"n": n}, clock=clock)
        poller = Poller(session_factory=sessions, dispatch=Recorder(), clock=clock, batch_size=500)
        while poller.poll_once().events:
            pass
        with sessions() as session, session.begin():
            first = select(func.min(Delivery.id)).where(Delivery.endpoint_id == "ep_busy")
            session.execute(
                update(Delivery)
                .where(Delivery.id == first.scalar_subquery())
                .values(lease_until=T0 + timedelta(hours=2))
            )
            of_quiet = select(Delivery.id).where(Delivery.endpoint_id == "ep_quiet")
            quiet = set(session.scalars(of_quiet))
            session.execute(text("ANALYZE deliveries"))
        clock.now = T0 + timedelta(hours=1)
        sent: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if statement.startswith("SELECT"):
                sent.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", capture)
        try:
            recorder = Recorder()
            poller = Poller(session_factory=sessions, dispatch=recorder, clock=clock)
            assert poller.sweep_once() == 3
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        assert set(recorder.ids) == quiet
        statement, parameters = sent[-1]
        read, plan = most_rows_read(engine, statement, parameters)
        assert read <= 10, json.dumps(plan, indent=1)
    finally:
        engine.dispose()


def test_a_poll_behind_a_long_outbox_takes_its_batch_in_id_order(postgres_url: str) -> None:
    """PostgreSQL, events never analysed (a fresh deployment, or one without
    autovacuum): once a poll has taken a full batch, the next takes the oldest waiting
    events from ``ix_events_waiting`` in id order and reads no more of them than its
    batch. The planner's own choice there reads and sorts every waiting event on every
    poll (a cost per poll that grows with the outbox). A poll that is not behind sends
    nothing more than its two statements."""
    from outbox.migrate import upgrade

    engine = engine_for(postgres_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    batch, waiting = 100, 3000
    try:
        with sessions() as session, session.begin():
            endpoint(session, "ep_a", "ws_a", ["*"])
            for n in range(waiting):
                publish(session, workspace_id="ws_a", type="run.succeeded", data={"n": n})
        poller = Poller(session_factory=sessions, dispatch=Recorder(), batch_size=batch)
        sent: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            sent.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", capture)
        try:
            assert poller.poll_once().events == batch
            first = len(sent)
            assert poller.poll_once().events == batch
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        assert [s.split()[0] for s, _ in sent[:first]] == ["WITH", "INSERT"]
        behind = sent[first:]
        assert [s.split()[0] for s, _ in behind] == ["SET", "WITH", "INSERT"]
        (setting, _), (take, parameters), _ = behind
        read, plan = most_rows_read(engine, take, parameters, before=setting)
        assert read <= batch + 1, json.dumps(plan, indent=1)  # its events and the endpoint
        with sessions() as session:
            left = session.scalar(select(func.count()).where(Event.dispatched_at.is_(None)))
        assert left == waiting - 2 * batch
    finally:
        engine.dispose()


def test_the_array_insert_names_every_column_a_new_delivery_has() -> None:
    """``COLUMNS`` (the PostgreSQL array insert's) and ``delivery_row`` agree, so no
    column is dropped on the way in, for a pending and a skipped delivery alike."""
    from types import SimpleNamespace

    from worker.fanout.deliveries import COLUMNS, delivery_row

    event = SimpleNamespace(id="evt_1", workspace_id="ws", type="run.failed", body="{}")
    for enabled in (True, False):
        target = SimpleNamespace(
            id="ep_1", event_types=["*"], filter=None, enabled=enabled, disabled_reason="x"
        )
        assert sorted(delivery_row(event, target, T0)) == sorted(COLUMNS)
