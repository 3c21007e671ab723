"""The engine's batching pieces: grouping delayed messages, the loop's room, the key
cache, and one claim transaction for many deliveries."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select

from outbox import Delivery, DeliveryStatus, Endpoint, publish
from outbox.poller import Poller
from worker.admission import Hold
from worker.engine.engine import group_by_delay
from worker.engine.keys import KeyCache
from worker.engine.loop import SendingLoop
from worker.receiver import Receiver
from worker.runtime import Runtime
from worker.secretbox import SecretBox


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


def test_keys_are_decrypted_once_per_ciphertext_and_a_rotation_is_a_new_entry() -> None:
    box = SecretBox(["OSk80ULaPv2qA-P6eOPwolNIvZ13H-ohloVJ6RIHwJU="])
    opened: list[str] = []
    real = box.decrypt

    def counting(token: str) -> str:
        opened.append(token)
        return real(token)

    box.decrypt = counting  # type: ignore[method-assign]
    cache = KeyCache(box)
    old, new = box.encrypt("whsec_old"), box.encrypt("whsec_new")
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert cache.signing_keys([{"secret": old, "expires_at": None}], now=now) == ["whsec_old"]
    assert cache.signing_keys([{"secret": old, "expires_at": None}], now=now) == ["whsec_old"]
    rotated = [
        {"secret": new, "expires_at": None},
        {"secret": old, "expires_at": "2026-01-02T00:00:00+00:00"},
    ]
    assert cache.signing_keys(rotated, now=now) == ["whsec_new", "whsec_old"]
    later = datetime(2026, 1, 3, tzinfo=UTC)
    assert cache.signing_keys(rotated, now=later) == ["whsec_new"]  # grace period over
    assert opened == [old, new]


def count_statements(runtime: Runtime) -> list[str]:
    statements: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(runtime.deliverer.database, "before_cursor_execute", record)
    return statements


def test_one_claim_and_one_record_transaction_serve_a_whole_batch(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    database_url: str,
) -> None:
    """Forty deliveries to one endpoint (limit 50) in one call: every one succeeds, and
    the database work does not grow with the batch (a handful of statements)."""
    runtime = make_runtime(database_url, max_concurrency=50)
    add_endpoint(runtime, receiver=receiver)
    with runtime.sessions() as session, session.begin():
        for i in range(40):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i})
    rung: list[str] = []
    Poller(session_factory=runtime.sessions, dispatch=rung.extend).poll_once()
    statements = count_statements(runtime)
    results = runtime.deliverer.deliver_many(rung)
    assert {r.status for r in results.values()} == {DeliveryStatus.SUCCEEDED}
    assert len(receiver.received()) == 40
    assert len(statements) <= 12, statements


def test_over_the_budget_a_batch_is_held_in_one_statement(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    database_url: str,
) -> None:
    runtime = make_runtime(database_url, limited_retry=timedelta(milliseconds=30))
    add_endpoint(runtime, receiver=receiver, max_concurrency=3)
    with runtime.sessions() as session, session.begin():
        for i in range(10):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i})
    rung: list[str] = []
    Poller(session_factory=runtime.sessions, dispatch=rung.extend).poll_once()
    results = runtime.deliverer.deliver_many(rung)
    statuses = sorted(r.status for r in results.values())
    assert statuses == ["postponed"] * 7 + ["succeeded"] * 3
    assert {r.held_by for r in results.values() if r.status == "postponed"} == {Hold.CONCURRENCY}
    with runtime.sessions() as session:
        held = session.scalars(select(Delivery).where(Delivery.held_by == Hold.CONCURRENCY))
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
    from tests.conftest import ManualClock

    clock = ManualClock()
    runtime = make_runtime(sqlite_url, clock=clock)
    add_endpoint(runtime, receiver=receiver)
    with runtime.sessions() as session, session.begin():
        for i in range(2):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i}, clock=clock)
    queued = [5]
    rung: list[str] = []
    poller = Poller(
        session_factory=runtime.sessions,
        dispatch=rung.extend,
        waiting=lambda: queued[0],
        sweep_after=timedelta(seconds=2),
        clock=clock,
    )
    poller.poll_once()
    first, second = rung
    clock.advance(timedelta(seconds=3))
    assert poller.sweep_once() == 0  # never seen the queue empty: all may be queued
    queued[0] = 0
    assert poller.sweep_once() == 2  # drained, still unclaimed: lost, rung again
    clock.advance(timedelta(seconds=3))
    queued[0] = 7
    with runtime.sessions() as session, session.begin():
        one = session.get_one(Delivery, first)
        one.lease_until = clock.now + timedelta(seconds=30)  # in flight
        other = session.get_one(Delivery, second)
        other.held_by = Hold.CONCURRENCY  # left for the worker holding the budget
    # The queue was last seen empty before the second ring... and the second is
    # left to the worker whose delivery is in flight.
    assert poller.sweep_once() == 0
    queued[0] = 0
    assert poller.sweep_once() == 0  # the endpoint is busy: its worker pulls it
    with runtime.sessions() as session, session.begin():
        session.get_one(Delivery, first).lease_until = None
    clock.advance(timedelta(seconds=3))
    assert poller.sweep_once() == 2 and rung[-2:] == [first, second]
