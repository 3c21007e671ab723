"""The engine's batching pieces: grouping delayed messages, the loop's room, one claim
and one record transaction for many deliveries, and the sweeper that leaves alone what
is queued or left to the worker holding an endpoint's budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select

from outbox import Delivery, DeliveryStatus, Endpoint, publish
from tests.support.clock import ManualClock
from worker.demo.receiver import Receiver
from worker.engine.engine import group_by_delay
from worker.engine.loop import SendingLoop
from worker.fanout.poller import Poller
from worker.policy.admission import Hold
from worker.runtime import Runtime


def test_similar_delays_share_one_message_that_waits_for_the_latest() -> None:
    groups = group_by_delay(
        [
            ("a", timedelta(seconds=5)),
            ("b", timedelta(seconds=5.3)),
            ("c", timedelta(minutes=5)),
            ("d", timedelta(seconds=0)),
        ]
    )
    assert groups == [(["d"], 1), (["a", "b"], 5301), (["c"], 300_001)]


def test_the_loop_room_makes_claimers_wait_and_is_given_back() -> None:
    loop = SendingLoop(room=3)
    try:
        assert loop.reserve(2) == 2
        assert loop.reserve(5) == 1  # what is left
        assert loop.reserve(1, timeout=0.05) == 0  # full: back-pressure
        got: list[int] = []
        waiter = threading.Thread(target=lambda: got.append(loop.reserve(2, whole=True)))
        waiter.start()
        time.sleep(0.05)
        loop.release(1)
        time.sleep(0.05)
        assert got == []  # asked for the whole two
        loop.release(1)
        waiter.join(2)
        assert got == [2] and loop.in_use == 3

        async def answer() -> int:
            return 42

        assert loop.call(answer()) == 42
    finally:
        loop.close()


def statements_of(runtime: Runtime) -> list[str]:
    """Every statement the runtime's engine runs from now on."""
    statements: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", record)
    return statements


def fan_out(runtime: Runtime, count: int, clock: Any = None) -> list[str]:
    with runtime.sessions() as session, session.begin():
        for i in range(count):
            kwargs = {"clock": clock} if clock is not None else {}
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i}, **kwargs)
    rung: list[str] = []
    poller = Poller(session_factory=runtime.sessions, dispatch=rung.extend)
    if clock is not None:
        poller.clock = clock
    poller.poll_once()
    return rung


def test_one_claim_and_one_record_transaction_serve_a_whole_batch(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    database_url: str,
) -> None:
    """Forty deliveries to one endpoint (limit 50) in one call: every one succeeds, and
    the database work does not grow with the batch (a handful of statements, against
    seven per delivery one at a time)."""
    runtime = make_runtime(database_url, max_concurrency=50)
    add_endpoint(runtime, receiver=receiver)
    rung = fan_out(runtime, 40)
    statements = statements_of(runtime)
    results = runtime.deliverer.deliver_many(rung)
    assert {r.status for r in results.values()} == {DeliveryStatus.SUCCEEDED}
    assert len(receiver.received()) == 40
    assert len(statements) <= 14, statements
    with runtime.sessions() as session:
        rows = session.scalars(select(Delivery)).all()
    assert {(r.status, r.attempt_count, r.lease_token) for r in rows} == {
        (DeliveryStatus.SUCCEEDED, 1, None)
    }


def test_over_the_budget_a_batch_is_held_in_one_statement(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    database_url: str,
) -> None:
    """Ten deliveries, a limit of three, one at a time (the replays' way): three go, the
    other seven are held (``concurrency``) with one UPDATE, spending no attempt."""
    runtime = make_runtime(database_url, limited_retry=timedelta(milliseconds=30))
    add_endpoint(runtime, receiver=receiver, max_concurrency=3)
    rung = fan_out(runtime, 10)
    statements = statements_of(runtime)
    results = runtime.deliverer.deliver_many(rung)
    statuses = sorted(r.status for r in results.values())
    assert statuses == ["postponed"] * 7 + ["succeeded"] * 3
    assert {r.held_by for r in results.values() if r.status == "postponed"} == {Hold.CONCURRENCY}
    holds = [s for s in statements if s.lstrip().upper().startswith("UPDATE") and "rung_at" in s]
    assert len(holds) == 1, holds
    with runtime.sessions() as session:
        held = list(session.scalars(select(Delivery).where(Delivery.held_by == Hold.CONCURRENCY)))
        assert len(held) == 7
        assert all(d.attempt_count == 0 and d.lease_until is None for d in held)
        assert session.scalars(select(Endpoint)).one().last_success_at is not None


def test_the_sweeper_leaves_what_is_queued_or_left_to_a_busy_endpoint(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    sqlite_url: str,
) -> None:
    """Rung deliveries still waiting in the queue are not rung again; a delivery left
    for lack of budget is left while its endpoint has one in flight, and rung once it
    has none."""
    clock = ManualClock()
    runtime = make_runtime(sqlite_url, clock=clock)
    add_endpoint(runtime, receiver=receiver)
    queued = [5]
    rung: list[str] = []
    poller = Poller(
        session_factory=runtime.sessions,
        dispatch=rung.extend,
        waiting=lambda: queued[0],
        sweep_after=timedelta(seconds=2),
        clock=clock,
    )
    with runtime.sessions() as session, session.begin():
        for i in range(2):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i}, clock=clock)
    poller.poll_once()
    first, second = rung
    clock.advance(timedelta(seconds=3))
    assert poller.sweep_once() == 0  # never seen the queue empty: all may be queued
    queued[0] = 0
    assert poller.sweep_once() == 2  # drained, still unclaimed: lost, rung again
    clock.advance(timedelta(seconds=3))
    with runtime.sessions() as session, session.begin():
        one = session.get_one(Delivery, first)
        one.lease_until = clock.now + timedelta(seconds=30)  # in flight
        other = session.get_one(Delivery, second)
        other.held_by = Hold.CONCURRENCY  # left for the worker holding the budget
    assert poller.sweep_once() == 0  # the endpoint is busy: its worker pulls it
    with runtime.sessions() as session, session.begin():
        session.get_one(Delivery, first).lease_until = None
    clock.advance(timedelta(seconds=3))
    assert poller.sweep_once() == 2 and sorted(rung[-2:]) == sorted([first, second])


def test_deliveries_left_over_the_budget_are_not_written_and_not_swept(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    database_url: str,
) -> None:
    """From the sending loop's side (``leave``), a claim over the endpoint's budget
    leases what fits in one UPDATE and writes nothing to the rest: they stay due and
    unmarked, and the sweeper does not ring them while the endpoint has one in flight
    (its worker pulls them), only once it has none."""
    clock = ManualClock()
    runtime = make_runtime(database_url, clock=clock)
    add_endpoint(runtime, receiver=receiver, max_concurrency=2)
    rung = fan_out(runtime, 5, clock=clock)
    statements = statements_of(runtime)
    claimer = runtime.deliverer._claimer  # the claim alone: nothing is sent
    with runtime.sessions() as session, session.begin():
        batch = claimer.claim(session, rung, None, 10, True)
    assert len(batch.claims) == 2
    left = sorted(i for i, r in batch.results.items() if r.status == "left")
    assert len(left) == 3 and batch.saturated == {batch.claims[0].target.id}
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1, updates  # the lease; nothing for the three left
    with runtime.sessions() as session:
        rows = {d.id: d for d in session.scalars(select(Delivery))}
    assert all(rows[i].held_by is None and rows[i].lease_until is None for i in left)
    swept: list[str] = []
    poller = Poller(
        session_factory=runtime.sessions,
        dispatch=swept.extend,
        waiting=lambda: 0,
        sweep_after=timedelta(seconds=2),
        clock=clock,
    )
    clock.advance(timedelta(seconds=3))  # the leases (30 s and more) are still live
    assert poller.sweep_once() == 0
    clock.advance(runtime.settings.lease_duration)  # the worker is gone: leases expired
    assert poller.sweep_once() == 5 and sorted(swept) == sorted(rung)
