"""A pull reads as many of an endpoint's deliveries as it takes, however long the
endpoint's backlog: PostgreSQL answers it from ``ix_deliveries_backlog`` in order, with
or without statistics on the table (a never-analysed table is what a fresh deployment,
or one without autovacuum, has), and never with a generic plan (which cannot see the
endpoint or the LIMIT), instead of reading and sorting the whole backlog."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, update

from outbox import Delivery, publish
from outbox.clock import utcnow
from tests.support.clock import ManualClock
from worker.engine.claim import FRONT_FOR, IN_BACKLOG_ORDER, Claimer
from worker.fanout.poller import IN_ID_ORDER, Poller
from worker.policy.admission import Admission
from worker.runtime import Runtime
from worker.telemetry.metrics import NO_METRICS

BACKLOG = 2000
SLOTS = 40


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _explained(runtime: Runtime, pulls: dict[str, int]) -> list[dict[str, Any]]:
    """The plan nodes of the pull for ``pulls``, as PostgreSQL ran it (``EXPLAIN
    ANALYZE`` of the exact statement and parameters the claimer sends)."""
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    engine = runtime.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.begin() as connection:
            found = Claimer._backlog(connection, True, pulls, SLOTS * len(pulls), utcnow())
            assert len(found) == sum(pulls.values())  # the backlog is deep enough
            statement, parameters = sent[-1]
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            # Never a generic plan once psycopg has prepared the statement: that one
            # cannot see the LIMIT or the endpoint, and reads the whole backlog.
            cursor.execute("SHOW plan_cache_mode")
            assert cursor.fetchone() == ("force_custom_plan",)
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            (document,) = cursor.fetchone()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    plan = document if isinstance(document, list) else json.loads(document)
    return list(_nodes(plan[0]["Plan"]))


@pytest.mark.parametrize("statistics", [False, True], ids=["never-analysed", "analysed"])
@pytest.mark.parametrize("endpoints", [1, 2], ids=["one-endpoint", "many-endpoints"])
def test_a_pull_reads_only_what_it_takes_of_a_long_backlog(
    statistics: bool,
    endpoints: int,
    postgres_url: str,
    make_runtime: Callable[..., Runtime],
    add_endpoint: Callable[..., Any],
) -> None:
    runtime = make_runtime(postgres_url, poll_batch_size=1000)
    ids = [add_endpoint(runtime, url=f"https://example.invalid/{n}").endpoint.id for n in range(2)]
    with runtime.sessions() as session, session.begin():
        for n in range(BACKLOG):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"n": n})
    poller = Poller(runtime.sessions, dispatch=lambda ids: None)
    while poller.poll_once().events:
        pass
    # A backlog in mid-drain: some of it in flight, some of it finished.
    with runtime.sessions() as session, session.begin():
        oldest = session.scalars(
            Delivery.__table__.select()  # type: ignore[attr-defined]
            .with_only_columns(Delivery.__table__.c.id)  # type: ignore[attr-defined]
            .order_by(Delivery.__table__.c.id)  # type: ignore[attr-defined]
            .limit(300)
        ).all()
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(oldest[:100]))
            .values(lease_until=utcnow() + timedelta(minutes=5))
        )
        session.execute(
            update(Delivery).where(Delivery.id.in_(oldest[100:])).values(status="succeeded")
        )
    if statistics:
        with runtime.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE deliveries")

    nodes = _explained(runtime, {endpoint_id: SLOTS for endpoint_id in ids[:endpoints]})

    touched = max(node.get("Actual Rows", 0) * node.get("Actual Loops", 1) for node in nodes)
    assert touched <= SLOTS * endpoints, [(n["Node Type"], n.get("Actual Rows")) for n in nodes]
    scans = {node.get("Index Name") for node in nodes if "Scan" in node["Node Type"]}
    assert "ix_deliveries_backlog" in scans


def _claimer(runtime: Runtime, clock: Any = utcnow) -> Claimer:
    return Claimer(
        runtime.settings, Admission(runtime.settings, random.Random(1)), clock, NO_METRICS
    )


def _lease_then_record(
    session: Any, leased: Sequence[str], recorded: Sequence[str], now: Any
) -> None:
    """Lease ``leased`` (for 45 s) and record ``recorded`` of them as succeeded, in two
    updates, as a drain does: each recorded delivery leaves two dead row versions and
    their index entries behind until a vacuum."""
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(leased))
        .values(lease_until=now + timedelta(seconds=45), lease_token="t")
    )
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(recorded))
        .values(status="succeeded", lease_until=None, lease_token=None, completed_at=now)
    )


FINISHED = 5000
LIMIT = 4


@pytest.mark.parametrize("statistics", [False, True], ids=["never-analysed", "analysed"])
@pytest.mark.parametrize("live", [3, 6], ids=["under-its-limit", "over-its-limit"])
def test_a_claim_counts_live_leases_without_revisiting_finished_ones(
    statistics: bool,
    live: int,
    postgres_url: str,
    make_runtime: Callable[..., Runtime],
    add_endpoint: Callable[..., Any],
) -> None:
    """Five thousand deliveries leased and then recorded within a lease's length leave
    their dead versions in ``ix_deliveries_in_flight`` beside the live leases (until a
    vacuum). The claim's count of live leases sees only the live ones, no further than
    the endpoint's limit, and does not read the finished deliveries' rows again: no
    bitmap scan (which visits every one of them on every claim), a few pages in all."""
    runtime = make_runtime(postgres_url, poll_batch_size=FINISHED + 1)
    add_endpoint(runtime, max_concurrency=LIMIT)
    with runtime.sessions() as session, session.begin():
        for n in range(FINISHED + live + 1):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"n": n})
    poller = Poller(runtime.sessions, dispatch=lambda ids: None)
    while poller.poll_once().events:
        pass
    now = utcnow()
    with runtime.sessions() as session, session.begin():
        table = Delivery.__table__
        ids = session.scalars(
            table.select().with_only_columns(table.c.id).order_by(table.c.id)  # type: ignore[attr-defined]
        ).all()
        leased, waiting = ids[:-1], ids[-1]
        _lease_then_record(session, leased, leased[:FINISHED], now)
    if statistics:
        with runtime.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE deliveries")

    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    claimer = _claimer(runtime)
    event.listen(runtime.engine, "before_cursor_execute", capture)
    try:
        with runtime.sessions() as session:
            batch = claimer.claim(session, [waiting], None, 100, False)
            session.rollback()  # so that the count below sees what the claim saw
    finally:
        event.remove(runtime.engine, "before_cursor_execute", capture)
    # Under its limit the waiting delivery is leased; at it, held for concurrency.
    assert [c.delivery_id for c in batch.claims] == ([waiting] if live < LIMIT else [])
    (statement, parameters), *_ = [s for s in sent if " AS busy" in s[0]]
    with runtime.engine.begin() as connection:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(statement, parameters)
        busy = cursor.fetchone()[-1]  # type: ignore[index]
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
        (document,) = cursor.fetchone()  # type: ignore[misc]
    plan = (document if isinstance(document, list) else json.loads(document))[0]["Plan"]
    assert busy == min(live, LIMIT)
    nodes = list(_nodes(plan))
    assert not [n for n in nodes if "Bitmap" in n["Node Type"]], json.dumps(plan, indent=1)
    assert plan["Shared Hit Blocks"] + plan.get("Shared Read Blocks", 0) <= 20, json.dumps(
        plan, indent=1
    )


DRAINED = 5000
DEEP = 400
PULL = 40


def _pulled(claimer: Claimer, runtime: Runtime, endpoint_id: str, slots: int) -> list[str]:
    """One pull of the endpoint's backlog, committed; the ids it found, in order."""
    with runtime.sessions() as session, session.begin():
        batch = claimer.claim(session, (), {endpoint_id: slots}, slots, True)
    return [c.delivery_id for c in batch.claims]


def _backlog_of(
    runtime: Runtime, add_endpoint: Callable[..., Any], events: int, *, analysed_at: int = 0
) -> tuple[str, list[str]]:
    """An endpoint and a backlog of ``events`` deliveries (the table analysed once the
    first ``analysed_at`` of them were there); its ids, oldest due first."""
    endpoint_id = add_endpoint(runtime, max_concurrency=1000).endpoint.id
    poller = Poller(runtime.sessions, dispatch=lambda ids: None)
    for start, end in ((0, analysed_at), (analysed_at, events)):
        with runtime.sessions() as session, session.begin():
            for n in range(start, end):
                publish(session, workspace_id="ws_a", type="run.succeeded", data={"n": n})
        while poller.poll_once().events:
            pass
        if end == analysed_at:
            with runtime.engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE deliveries")
    table = Delivery.__table__
    with runtime.sessions() as session:
        ids = session.scalars(
            table.select()  # type: ignore[attr-defined]
            .with_only_columns(table.c.id)  # type: ignore[attr-defined]
            .order_by(table.c.next_attempt_at, table.c.id)  # type: ignore[attr-defined]
        ).all()
    return endpoint_id, list(ids)


@pytest.mark.parametrize("analysed_at", [0, 50], ids=["never-analysed", "analysed-while-short"])
def test_a_pull_of_a_deep_backlog_starts_where_the_last_one_found_it(
    analysed_at: int,
    postgres_url: str,
    make_runtime: Callable[..., Runtime],
    add_endpoint: Callable[..., Any],
) -> None:
    """Five thousand deliveries drained from the front of a backlog (leased, then
    recorded: two dead row versions each, left until a vacuum): once a pull has found
    where the backlog begins, the next one starts there, a few pages, instead of
    walking every dead entry before it, as a pull from the start does. Also with
    statistics from when the backlog was short, which estimate a handful of rows past
    the front (a bitmap scan of all of them and a sort would look cheap)."""
    runtime = make_runtime(postgres_url, poll_batch_size=1000)
    endpoint_id, ids = _backlog_of(runtime, add_endpoint, DRAINED + DEEP, analysed_at=analysed_at)
    now = utcnow()
    with runtime.sessions() as session, session.begin():
        _lease_then_record(session, ids[:DRAINED], ids[:DRAINED], now)
    claimer = _claimer(runtime)
    assert _pulled(claimer, runtime, endpoint_id, PULL) == sorted(ids[DRAINED : DRAINED + PULL])

    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(runtime.engine, "before_cursor_execute", capture)
    try:
        with runtime.sessions() as session:  # rolled back: measured below as it ran
            batch = claimer.claim(session, (), {endpoint_id: PULL}, PULL, True)
            session.rollback()
    finally:
        event.remove(runtime.engine, "before_cursor_execute", capture)
    second = [c.delivery_id for c in batch.claims]
    assert second == sorted(ids[DRAINED + PULL : DRAINED + 2 * PULL])  # the next ones
    pulls = [s for s in sent if "ORDER BY" in s[0] and "next_attempt_at" in s[0]]
    assert len(pulls) == 1, [s for s, _ in sent]  # from the front only: nothing behind it
    assert [s for s, _ in sent].count(IN_BACKLOG_ORDER) == 1

    def pages(statement: str, parameters: Any, *settings: str) -> int:
        with runtime.engine.begin() as connection:
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            for setting in settings:  # what the claim's transaction had set
                cursor.execute(setting)
            cursor.execute(statement, parameters)  # once first: hint bits set, as in a drain
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
            (document,) = cursor.fetchone()  # type: ignore[misc]
        plan = (document if isinstance(document, list) else json.loads(document))[0]["Plan"]
        nodes = list(_nodes(plan))
        assert "ix_deliveries_backlog" in {n.get("Index Name") for n in nodes}
        assert not [n for n in nodes if n["Node Type"] == "Sort"], json.dumps(plan, indent=1)
        return int(plan["Shared Hit Blocks"] + plan.get("Shared Read Blocks", 0))

    ((statement, parameters),) = pulls
    from_front = pages(statement, parameters, IN_BACKLOG_ORDER)
    sent.clear()
    event.listen(runtime.engine, "before_cursor_execute", capture)
    try:
        with runtime.engine.begin() as connection:
            Claimer._backlog(connection, True, {endpoint_id: PULL}, PULL, utcnow())
    finally:
        event.remove(runtime.engine, "before_cursor_execute", capture)
    from_start = pages(*sent[-1])
    # From the front: the rows it returns (and the versions the rolled-back claim
    # left) and a few index pages, however long the drain behind it; from the start,
    # the pages of every dead entry besides.
    assert from_front <= 2 * PULL + 10, from_front
    assert from_start >= from_front + DRAINED // 100, (from_front, from_start)


def test_a_delivery_behind_the_front_is_pulled_all_the_same(
    postgres_url: str,
    make_runtime: Callable[..., Runtime],
    add_endpoint: Callable[..., Any],
) -> None:
    """A delivery that becomes due behind the remembered front (its lease ran out with
    its worker): the first pull that finds fewer than it asked for from the front reads
    from the start again and takes it, and while the backlog stays deep, a pull reads
    from the start every ``FRONT_FOR`` all the same."""
    runtime = make_runtime(postgres_url, poll_batch_size=1000)
    endpoint_id, ids = _backlog_of(runtime, add_endpoint, DEEP)
    clock = ManualClock(utcnow() + timedelta(seconds=1))
    claimer = _claimer(runtime, clock)
    assert _pulled(claimer, runtime, endpoint_id, PULL) == sorted(ids[:PULL])
    assert _pulled(claimer, runtime, endpoint_id, PULL) == sorted(ids[PULL : 2 * PULL])

    def lost(delivery_id: str) -> None:  # its worker died: the lease ran out unrecorded
        with runtime.sessions() as session, session.begin():
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(lease_until=clock() - timedelta(seconds=1))
            )

    lost(ids[10])
    # The backlog is deep and the front was read from the start less than FRONT_FOR ago.
    assert _pulled(claimer, runtime, endpoint_id, PULL) == sorted(ids[2 * PULL : 3 * PULL])
    clock.advance(FRONT_FOR)
    fourth = _pulled(claimer, runtime, endpoint_id, PULL)
    assert fourth == sorted([ids[10], *ids[3 * PULL : 4 * PULL - 1]])
    lost(ids[5])  # behind the front this pull found (ids[10])
    rest = _pulled(claimer, runtime, endpoint_id, DEEP)  # more than is left: short
    assert rest == sorted([ids[5], *ids[4 * PULL - 1 :]])


@pytest.mark.parametrize("settings", [IN_BACKLOG_ORDER, IN_ID_ORDER], ids=["pull", "poll"])
def test_planner_settings_for_index_order_leave_no_jit_in_the_transaction(
    settings: str, postgres_url: str, make_runtime: Callable[..., Runtime]
) -> None:
    """With sorts disabled, a statement that cannot do without one (the claim's advisory
    locks) is costed past ``jit_above_cost``, and compiling it took 110 ms on every
    claim from a front. The settings turn JIT off for their transaction, and only
    there."""
    runtime = make_runtime(postgres_url)
    locks = (
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(pg_advisory_xact_lock(1, k)) FROM "
        "(SELECT DISTINCT hashtext(e) AS k FROM unnest(ARRAY['a', 'b']) AS e ORDER BY 1) AS k"
    )
    with runtime.engine.connect() as connection:
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        cursor.execute("SHOW jit")
        (before,) = cursor.fetchone()  # type: ignore[misc]
        cursor.execute(settings)
        cursor.execute("SHOW enable_sort")
        assert cursor.fetchone() == ("off",)
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)
        cursor.execute(locks)
        (document,) = cursor.fetchone()  # type: ignore[misc]
        plan = (document if isinstance(document, list) else json.loads(document))[0]
        assert "JIT" not in plan, plan["JIT"]
        dbapi.rollback()
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == (before,)  # the transaction's only
