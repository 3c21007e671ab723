"""The sending loop's room and the pulls that refill it: the room is sized from the
open-files limit, a room mostly taken by an endpoint that never answers does not keep a
delivery thread waiting, and the slots freed at many endpoints are refilled in one
claim that keeps every endpoint's budget."""

from __future__ import annotations

import random
import re
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from outbox import Delivery, DeliveryStatus, publish
from outbox.clock import utcnow
from tests.support.harness import add_hanging, statuses
from tests.support.waiting import wait_until
from worker import runtime as runtime_module
from worker.demo.receiver import Receiver, always
from worker.engine import engine as engine_module
from worker.engine.claim import Claimer
from worker.engine.loop import FILES_KEPT, MAX_ROOM, SendingLoop, room_for_open_files
from worker.fanout.poller import Poller
from worker.policy.admission import Admission
from worker.runtime import Runtime
from worker.telemetry.metrics import NO_METRICS


class FakeLimits:
    """``resource``'s open-files limit, as a process would find it."""

    RLIMIT_NOFILE = 7
    RLIM_INFINITY = -1

    def __init__(self, soft: int, hard: int, *, refuse: bool = False) -> None:
        self.limits = (soft, hard)
        self.refuse = refuse

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == self.RLIMIT_NOFILE
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        if self.refuse:
            raise ValueError("not allowed")
        self.limits = limits


@pytest.mark.parametrize(
    ("soft", "hard", "refuse", "room", "raised"),
    [
        (1024, 20_000, False, (20_000 - FILES_KEPT) // 2, 20_000),  # raised to the hard limit
        (1024, 20_000, True, (1024 - FILES_KEPT) // 2, 1024),  # refused: what the soft allows
        (1024, 1024, False, (1024 - FILES_KEPT) // 2, 1024),
        (1 << 20, 1 << 20, False, MAX_ROOM, 1 << 20),  # budgets, not the room, bound it
        (300, 300, False, 64, 300),
    ],
)
def test_the_room_is_sized_from_the_open_files_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, refuse: bool, room: int, raised: int
) -> None:
    """The soft limit goes up to the hard one; the room is half the descriptors left
    beside the ones kept aside, within bounds."""
    limits = FakeLimits(soft, hard, refuse=refuse)
    monkeypatch.setitem(sys.modules, "resource", limits)
    assert room_for_open_files() == room
    assert limits.limits == (raised, hard)


def test_a_room_mostly_taken_by_a_hanging_endpoint_keeps_no_thread_waiting(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One worker thread, a room of 20. An endpoint that never answers holds 15 of it
    for the whole 4 s deadline; a healthy endpoint's 40 deliveries, rung in one
    message, still all go at once: the thread claims what fits and rings the rest
    again instead of waiting for the hanging ones' deadline."""
    monkeypatch.setattr(runtime_module, "SendingLoop", lambda: SendingLoop(room=20))
    runtime = make_runtime(
        sqlite_url, worker_threads=1, request_timeout=4.0, circuit_threshold=1000
    )
    assert runtime.loop.room == 20
    hanging = add_hanging(add_endpoint, runtime, receiver, max_concurrency=15)
    healthy = add_endpoint(
        runtime, receiver=receiver, path="/ok", workspace_id="ws_ok", max_concurrency=16
    )
    publish_events(runtime, 15, "ws_hang")
    with runtime.running():
        assert wait_until(lambda: len(receiver.received("/hang")) >= 15, timeout=10)
        started = time.monotonic()
        publish_events(runtime, 40, "ws_ok")
        assert wait_until(
            lambda: statuses(runtime, healthy.endpoint.id).count(DeliveryStatus.SUCCEEDED) == 40,
            timeout=10,
        )
        elapsed = time.monotonic() - started
        hung = len(receiver.received("/hang"))
        hanging_statuses = statuses(runtime, hanging.endpoint.id)
    assert elapsed < 3.0, f"healthy deliveries took {elapsed:.1f}s beside a hanging endpoint"
    assert hung == 15 and hanging_statuses.count(DeliveryStatus.PENDING) == 15
    assert len(receiver.received("/ok")) == 40  # each once


def publish_events(runtime: Runtime, count: int, workspace: str) -> None:
    with runtime.sessions() as session, session.begin():
        for i in range(count):
            publish(session, workspace_id=workspace, type="run.succeeded", data={"i": i})


def test_one_claim_pulls_many_endpoints_each_within_its_budget(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    database_url: str,
) -> None:
    """Three endpoints, limit 2 each, four due deliveries each, one of the first's
    already in flight. One pull of all three (4, 1 and 4 slots) claims 1, 1 and 2 —
    each endpoint's budget or its slots — leaves the rest due for the budget holder
    to pull, and on PostgreSQL reads the three backlogs in one statement."""
    from tests.worker.engine.test_batching import statements_of

    runtime = make_runtime(database_url)
    endpoints = [
        add_endpoint(runtime, receiver=receiver, workspace_id=f"ws_{n}", max_concurrency=2)
        for n in range(3)
    ]
    for n in range(3):
        publish_events(runtime, 4, f"ws_{n}")
    Poller(session_factory=runtime.sessions, dispatch=lambda ids: None).poll_once()
    first, second, third = (e.endpoint.id for e in endpoints)
    now = utcnow()
    with runtime.sessions() as session, session.begin():
        busy = session.scalars(
            select(Delivery.id).where(Delivery.endpoint_id == first).order_by(Delivery.id)
        ).first()
        session.execute(
            update(Delivery)
            .where(Delivery.id == busy)
            .values(lease_until=now + timedelta(seconds=30), lease_token="t")
        )
    claimer = Claimer(
        runtime.settings, Admission(runtime.settings, random.Random(1)), utcnow, NO_METRICS
    )
    statements = statements_of(runtime)
    with runtime.sessions() as session, session.begin():
        batch = claimer.claim(session, (), {first: 4, second: 1, third: 4}, 100, True)
    claimed: dict[str, int] = {}
    for claim in batch.claims:
        claimed[claim.target.id] = claimed.get(claim.target.id, 0) + 1
    assert claimed == {first: 1, second: 1, third: 2}
    assert dict(batch.found) == {first: 3, second: 1, third: 4}
    assert batch.saturated == {first, third}
    with runtime.sessions() as session:
        rows = session.scalars(select(Delivery)).all()
    leased = [r for r in rows if r.lease_until is not None and r.id != busy]
    assert len(leased) == 4 and all(r.attempt_count == 0 for r in rows)
    left = [r for r in rows if r.lease_until is None and r.endpoint_id in (first, third)]
    assert sorted(r.endpoint_id for r in left) == sorted([first, first, third, third])
    assert all(r.next_attempt_at is not None and r.next_attempt_at <= now for r in left)
    if runtime.engine.dialect.name == "postgresql":
        backlogs = [s for s in statements if "LATERAL" in s.upper()]
        reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(backlogs) == 1, statements
        # No endpoint's backlog read on its own (``ORDER BY [endpoint_id,]
        # next_attempt_at`` of its deliveries): the claim's count of live leases has a
        # LIMIT of its own.
        backlog_order = r"ORDER BY (\S*deliveries\.endpoint_id, )?\S*deliveries\.next_attempt_at"
        by_due = [s for s in reads if re.search(backlog_order, s)]
        assert by_due == backlogs, statements


def test_slots_freed_at_many_endpoints_are_refilled_in_one_claim(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twenty endpoints, one delivery each, rung together: after each recording the
    recorder pulls every endpoint whose slot it freed, all in one claim (not one claim
    per endpoint), and each endpoint once."""
    runtime = make_runtime(database_url)
    rung = _twenty_endpoints_rung(runtime, add_endpoint, receiver, events=1)
    assert len(rung) == 20
    engine = runtime.deliverer
    pulls: list[dict[str, int]] = []
    claim = engine._claimer.claim

    def spy_claim(session: Any, ids: Any, wanted: Any, room: int, leave: bool) -> Any:
        if wanted and not ids:
            pulls.append(dict(wanted))
        return claim(session, ids, wanted, room, leave)

    monkeypatch.setattr(engine._claimer, "claim", spy_claim)
    records = _spy_records(engine, monkeypatch)
    engine.start(lambda *args: None)
    engine.ring(rung)
    assert wait_until(lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 20, timeout=10)
    assert wait_until(lambda: sum(len(p) for p in pulls) == 20, timeout=5), pulls
    assert sum(records) == 20
    assert len(pulls) <= len(records), (pulls, records)  # one pull claim per recording
    pulled = [e for p in pulls for e in p]
    assert len(set(pulled)) == 20 and all(s == 1 for p in pulls for s in p.values())
    engine.close(2)


def test_slots_offered_to_other_workers_go_in_one_message_per_recording(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twenty endpoints of one slot each, two deliveries each: the second waits for the
    first's slot. When the firsts are recorded, the freed slots are offered to every
    worker through the broker — all the endpoints a recording freed in one message (one
    claim for whoever takes it), not one message per endpoint — and taking those
    messages delivers the rest."""
    runtime = make_runtime(database_url)
    rung = _twenty_endpoints_rung(runtime, add_endpoint, receiver, events=2, max_concurrency=1)
    assert len(rung) == 40
    engine = runtime.deliverer
    records = _spy_records(engine, monkeypatch)
    offered: list[dict[str, int]] = []
    engine.start(lambda ids, delay_ms, pulls: offered.append(dict(pulls)) if pulls else None)
    engine.ring(rung)
    assert wait_until(lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 20, timeout=10)
    assert wait_until(lambda: sum(len(p) for p in offered) == 20, timeout=5), offered
    assert len(offered) <= len(records), (offered, records)
    assert sorted(e for p in offered for e in p) == sorted({e for p in offered for e in p})
    for pulls in list(offered):  # another worker takes each message
        engine.ring((), pulls)
    assert wait_until(lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 40, timeout=10)
    engine.close(2)


def _twenty_endpoints_rung(
    runtime: Runtime, add_endpoint: Any, receiver: Receiver, *, events: int, **endpoint: Any
) -> list[str]:
    """Twenty endpoints of one workspace, ``events`` published to them and fanned out:
    the delivery ids the poller rang."""
    for n in range(20):
        add_endpoint(runtime, receiver=receiver, path=f"/e{n}", workspace_id="ws_a", **endpoint)
    publish_events(runtime, events, "ws_a")
    rung: list[str] = []
    Poller(session_factory=runtime.sessions, dispatch=rung.extend).poll_once()
    return rung


def _spy_records(engine: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each batch the engine's recorder writes, appended as it writes."""
    records: list[int] = []
    record = engine._recorder.record

    def spy_record(session: Any, finished: Any) -> Any:
        records.append(len(finished))
        return record(session, finished)

    monkeypatch.setattr(engine._recorder, "record", spy_record)
    return records


def test_deliveries_left_to_a_budget_held_elsewhere_are_pulled_if_its_holder_does_not(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    database_url: str,
) -> None:
    """Another worker holds the endpoint's only slot when this one is rung: the
    delivery is left, due, for that worker to pull. That worker's attempt finishes
    without pulling (it looked before the delivery was left, and found nothing
    waiting): a pull follows a second later all the same, once however often the
    delivery is rung meanwhile, and taking it delivers the delivery."""
    runtime = make_runtime(database_url)
    endpoint_id = add_endpoint(runtime, receiver=receiver, max_concurrency=1).endpoint.id
    publish_events(runtime, 2, "ws_a")
    rung: list[str] = []
    Poller(session_factory=runtime.sessions, dispatch=rung.extend).poll_once()
    elsewhere, here = rung
    with runtime.sessions() as session, session.begin():  # the other worker's lease
        session.execute(
            update(Delivery)
            .where(Delivery.id == elsewhere)
            .values(lease_until=utcnow() + timedelta(minutes=5), lease_token="elsewhere")
        )
    engine = runtime.deliverer
    messages: list[tuple[list[str], int, dict[str, int] | None]] = []
    engine.start(lambda ids, delay_ms, pulls: messages.append((list(ids), delay_ms, pulls)))
    engine.ring([here])
    engine.ring([here])  # rung again meanwhile (a duplicate message): still one pull
    assert messages == [([], 1000, {endpoint_id: 1})]
    assert statuses(runtime) == [DeliveryStatus.PENDING] * 2
    with runtime.sessions() as session, session.begin():  # its attempt is done
        session.execute(
            update(Delivery)
            .where(Delivery.id == elsewhere)
            .values(lease_until=None, lease_token=None, status=DeliveryStatus.SUCCEEDED)
        )
    ((_, _, pulls),) = messages
    assert pulls is not None
    engine.ring((), pulls)  # whichever worker takes the message
    assert wait_until(lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 2, timeout=10)
    assert len(receiver.received()) == 1  # only the one left; the other was not ours
    engine.close(2)


def test_a_pull_with_no_room_left_here_goes_to_the_broker(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    sqlite_url: str,
) -> None:
    """Slots freed at an endpoint while this process's loop is full of other
    endpoints' deliveries: the pull that would refill them is not dropped (the
    endpoint's backlog would wait for the sweeper) but rung for any worker."""
    runtime = make_runtime(sqlite_url)
    endpoint_id = add_endpoint(runtime, receiver=receiver).endpoint.id
    publish_events(runtime, 3, "ws_a")
    Poller(session_factory=runtime.sessions, dispatch=lambda ids: None).poll_once()
    engine = runtime.deliverer
    messages: list[tuple[list[str], int, dict[str, int] | None]] = []
    engine.start(lambda ids, delay_ms, pulls: messages.append((list(ids), delay_ms, pulls)))
    loop = engine._loop
    taken = loop.reserve(loop.room, timeout=0)  # the room, full of someone else's
    try:
        engine._pull_here({endpoint_id: 3})
    finally:
        loop.release(taken)
    assert messages == [([], 0, {endpoint_id: 3})]
    assert statuses(runtime) == [DeliveryStatus.PENDING] * 3  # nothing claimed here
    engine.ring((), {endpoint_id: 3})  # whichever worker takes it
    assert wait_until(lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 3, timeout=10)
    engine.close(2)


def test_the_recorder_does_not_wait_for_attempts_that_hang(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After an attempt finishes, the recorder waits a moment for others in flight to
    record with it, but not for ones that have been going for longer than ``YOUNG``
    (here five to an endpoint that never answers): with the wait made 5 s long, a
    healthy delivery beside them is recorded at once, not 5 s later."""
    monkeypatch.setattr(engine_module, "RECORD_WINDOW", 5.0)
    monkeypatch.setattr(engine_module, "YOUNG", 0.3)
    runtime = make_runtime(sqlite_url, request_timeout=20.0, circuit_threshold=1000)
    add_hanging(add_endpoint, runtime, receiver, max_concurrency=5)
    healthy = add_endpoint(runtime, receiver=receiver, path="/ok", workspace_id="ws_ok")
    publish_events(runtime, 5, "ws_hang")
    with runtime.running():
        assert wait_until(lambda: len(receiver.received("/hang")) >= 5, timeout=10)
        time.sleep(0.5)  # older than YOUNG now
        publish_events(runtime, 1, "ws_ok")
        assert receiver.wait_for(1, path="/ok", timeout=5)
        answered = time.monotonic()
        assert wait_until(
            lambda: statuses(runtime, healthy.endpoint.id) == [DeliveryStatus.SUCCEEDED],
            timeout=10,
        )
        waited = time.monotonic() - answered
    assert waited < 2.5, f"recorded {waited:.1f}s after its answer"


def test_attempts_that_finished_while_the_recorder_was_busy_are_recorded_together(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Forty deliveries rung at once: one to a fast endpoint, 39 to one that answers in
    100 ms. The fast one is recorded first, in a slow transaction (300 ms); the 39 that
    finished meanwhile are all taken in the next one, with nothing left in flight to
    wait for, not one transaction each."""
    runtime = make_runtime(database_url)
    add_endpoint(runtime, receiver=receiver, path="/fast", workspace_id="ws_a")
    add_endpoint(
        runtime,
        receiver=receiver,
        path="/slow",
        workspace_id="ws_b",
        max_concurrency=40,
        behaviour=always(200, delay=0.1),
    )
    publish_events(runtime, 1, "ws_a")
    publish_events(runtime, 39, "ws_b")
    rung: list[str] = []
    Poller(session_factory=runtime.sessions, dispatch=rung.extend).poll_once()
    engine = runtime.deliverer
    records = _spy_records(engine, monkeypatch)
    record = engine._recorder.record

    def slow_first(session: Any, finished: Any) -> Any:
        if len(records) == 1:
            time.sleep(0.3)
        return record(session, finished)

    monkeypatch.setattr(engine._recorder, "record", slow_first)
    engine.start(lambda *args: None)
    engine.ring(rung)
    assert wait_until(lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 40, timeout=10)
    engine.close(2)
    assert sum(records) == 40
    assert records[0] == 1 and len(records) <= 3, records
