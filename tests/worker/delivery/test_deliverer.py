"""The delivery actor's core: claim, sign, send, record (httpx MockTransport as receiver)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import select

from catentio_signing import Webhook
from outbox import Attempt, Delivery, DeliveryStatus, Endpoint, Event, publish
from tests.support.cli import logging_restored
from tests.support.clock import ManualClock
from tests.support.waiting import wait_until
from worker.errors import DatabaseUnavailable
from worker.runtime import Runtime

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Handler:
    """A MockTransport handler: records requests, answers from a list of statuses."""

    def __init__(self, *statuses: int, delay: float = 0.0) -> None:
        self.statuses = list(statuses) or [200]
        self.delay = delay
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        if self.delay:
            time.sleep(self.delay)
        return httpx.Response(status, text="ok" if status < 300 else "nope")


def one_delivery(runtime: Runtime, add_endpoint: Any, clock: ManualClock, **endpoint: Any) -> Any:
    created = add_endpoint(runtime, url="https://receiver.example/hook", **endpoint)
    with runtime.sessions() as session, session.begin():
        event = publish(
            session, workspace_id="ws_a", type="run.succeeded", data={"n": 1}, clock=clock
        )
    runtime.poller().poll_once()
    with runtime.sessions() as session:
        delivery = session.scalars(select(Delivery)).one()
    return created, event, delivery


def attempts_of(runtime: Runtime, delivery_id: str) -> list[Attempt]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.number)
            )
        )


def test_concurrent_duplicate_messages_send_one_request(
    database_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """Eight workers handed the same delivery at once: one wins the claim, one request."""
    handler = Handler(200, delay=0.2)
    clock = ManualClock(T0)
    runtime = make_runtime(database_url, transport=httpx.MockTransport(handler), clock=clock)
    _, _, delivery = one_delivery(runtime, add_endpoint, clock)
    barrier = threading.Barrier(8)
    results: list[str] = []

    def work() -> None:
        barrier.wait()
        results.append(runtime.deliverer.deliver(delivery.id).status)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(handler.requests) == 1
    assert sorted(results) == ["not_claimed"] * 7 + ["succeeded"]
    assert len(attempts_of(runtime, delivery.id)) == 1


def test_request_is_signed_over_the_stored_bytes(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """The POST carries the stored body unchanged, webhook-id = event id, the attempt
    time as webhook-timestamp, a valid signature and our informational headers; custom
    headers are sent but cannot replace ours."""
    handler = Handler(200)
    clock = ManualClock(T0)
    runtime = make_runtime(sqlite_url, transport=httpx.MockTransport(handler), clock=clock)
    created, event, delivery = one_delivery(
        runtime, add_endpoint, clock, headers={"X-Tenant": "t-1", "Authorization": "Bearer s3"}
    )
    clock.now += timedelta(seconds=2)
    runtime.deliverer.deliver(delivery.id)
    (request,) = handler.requests
    with runtime.sessions() as session:
        stored = session.get_one(Event, event.id).body.encode()
    assert request.content == stored
    assert request.headers["webhook-id"] == event.id
    assert request.headers["webhook-timestamp"] == str(int(clock.now.timestamp()))
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Catentio-Webhooks/")
    assert request.headers["x-catentio-delivery-id"] == delivery.id
    assert request.headers["x-catentio-attempt"] == "1"
    assert request.headers["x-catentio-event-type"] == "run.succeeded"
    assert request.headers["x-tenant"] == "t-1"
    Webhook(created.secret, tolerance=10**9).verify(request.content, dict(request.headers))


def test_no_secret_in_logs_attempts_or_headers(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """The signing secret and custom header credentials appear in no log line and no
    stored attempt; no outbound header carries the signing secret."""
    handler = Handler(500, 200)
    clock = ManualClock(T0)
    runtime = make_runtime(sqlite_url, transport=httpx.MockTransport(handler), clock=clock)
    with (
        logging_restored(),
        structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]
        ) as logs,
    ):
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
        created, _, delivery = one_delivery(
            runtime, add_endpoint, clock, headers={"Authorization": "Bearer sup3r-s3cret"}
        )
        runtime.deliverer.deliver(delivery.id)
        clock.now += timedelta(seconds=1)
        runtime.deliverer.deliver(delivery.id)
    attempts = attempts_of(runtime, delivery.id)
    assert len(attempts) == 2
    secret_material = [created.secret, created.secret.removeprefix("whsec_"), "sup3r-s3cret"]
    haystacks = [repr(logs)] + [repr(vars(a)) for a in attempts]
    for secret in secret_material:
        assert all(secret not in text for text in haystacks)
        assert all(
            secret not in repr(dict(r.headers))
            for r in handler.requests
            if secret != "sup3r-s3cret"
        )
    assert attempts[0].request_headers["authorization"] == "[redacted]"
    assert any(
        entry["event"] == "delivery.attempted" and entry.get("delivery_id") == delivery.id
        for entry in logs
    )


def test_failures_follow_the_schedule_then_fail(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """500s retry after each delay of the schedule, without jitter here; after the last
    delay the delivery is failed with every attempt on record."""
    handler = Handler(500)
    clock = ManualClock(T0)
    schedule = (timedelta(seconds=5), timedelta(minutes=5))
    runtime = make_runtime(
        sqlite_url, transport=httpx.MockTransport(handler), clock=clock, retry_schedule=schedule
    )
    _, _, delivery = one_delivery(runtime, add_endpoint, clock)
    first = runtime.deliverer.deliver(delivery.id)
    assert first.status == DeliveryStatus.PENDING and first.retry_in == timedelta(seconds=5)
    assert runtime.deliverer.deliver(delivery.id).status == "not_claimed"  # not due yet
    clock.now += timedelta(seconds=5)
    assert runtime.deliverer.deliver(delivery.id).retry_in == timedelta(minutes=5)
    clock.now += timedelta(minutes=5)
    last = runtime.deliverer.deliver(delivery.id)
    assert last.status == DeliveryStatus.FAILED and last.retry_in is None
    with runtime.sessions() as session:
        row = session.get_one(Delivery, delivery.id)
    assert (row.status, row.attempt_count, row.last_status_code) == ("failed", 3, 500)
    assert row.completed_at == clock.now and row.next_attempt_at is None
    assert [a.response_status for a in attempts_of(runtime, delivery.id)] == [500, 500, 500]
    assert runtime.deliverer.deliver(delivery.id).status == "not_claimed"
    assert len(handler.requests) == 3


def test_jitter_spreads_retries_within_bounds(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """With jitter, the retry delay stays within ±jitter of the scheduled one."""
    runtime = make_runtime(
        sqlite_url,
        transport=httpx.MockTransport(Handler(500)),
        retry_schedule=(timedelta(seconds=100),),
        retry_jitter=0.2,
    )
    delays = {runtime.deliverer._schedule.next_delay(1) for _ in range(50)}
    assert len(delays) > 1
    assert all(timedelta(seconds=80) <= d <= timedelta(seconds=120) for d in delays if d)


def test_dead_database_spends_no_attempt(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """If the database is down when the message arrives, no request is sent and the
    caller gets DatabaseUnavailable (dramatiq retries; the row is untouched)."""
    handler = Handler(200)
    clock = ManualClock(T0)
    runtime = make_runtime(sqlite_url, transport=httpx.MockTransport(handler), clock=clock)
    _, _, delivery = one_delivery(runtime, add_endpoint, clock)
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    dead = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    runtime.deliverer._sessions = sessionmaker(dead)
    with pytest.raises(DatabaseUnavailable):
        runtime.deliverer.deliver(delivery.id)
    dead.dispose()
    assert handler.requests == []


def test_actor_resends_itself_with_the_scheduled_delay(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """Through dramatiq (in-process broker, real Worker): a 500 re-enqueues the message
    with the schedule's delay and the next attempt succeeds."""
    handler = Handler(500, 200)
    runtime = make_runtime(
        sqlite_url,
        transport=httpx.MockTransport(handler),
        retry_schedule=(timedelta(milliseconds=300),),
    )
    add_endpoint(runtime, url="https://receiver.example/hook")
    with runtime.sessions() as session, session.begin():
        publish(session, workspace_id="ws_a", type="run.succeeded", data={})
    runtime.poller().poll_once()
    runtime.start_worker(2)
    deadline = time.monotonic() + 10
    while len(handler.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    runtime.broker.join(runtime.settings.queue_name, timeout=10_000)
    assert len(handler.requests) == 2

    def recorded() -> bool:  # the recorder thread writes the second attempt
        with runtime.sessions() as session:
            return len(attempts_of(runtime, session.scalars(select(Delivery.id)).one())) == 2

    assert wait_until(recorded, timeout=10)
    with runtime.sessions() as session:
        row = session.scalars(select(Delivery)).one()
        attempts = attempts_of(runtime, row.id)
    gap = (attempts[1].started_at - attempts[0].started_at).total_seconds()
    assert row.status == DeliveryStatus.SUCCEEDED
    assert gap >= 0.29


def test_closing_the_circuit_releases_held_deliveries_at_once(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """When the probe succeeds, the deliveries held behind it are due now and are
    handed back for the actor to ring, instead of waiting for their own messages."""
    handler = Handler(500, 200, 200)
    clock = ManualClock(T0)
    runtime = make_runtime(
        sqlite_url,
        transport=httpx.MockTransport(handler),
        clock=clock,
        circuit_threshold=1,
        retry_schedule=(timedelta(seconds=10),),
    )
    add_endpoint(runtime, url="https://receiver.example/hook")
    with runtime.sessions() as session, session.begin():
        for i in range(2):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i}, clock=clock)
    runtime.poller().poll_once()
    with runtime.sessions() as session:
        probe, held = session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
    assert runtime.deliverer.deliver(probe).status == DeliveryStatus.PENDING  # 500: open
    assert runtime.deliverer.deliver(held).held_by == "circuit"
    clock.now += timedelta(seconds=10)
    result = runtime.deliverer.deliver(probe)
    assert result.status == DeliveryStatus.SUCCEEDED
    assert result.released == (held,)
    assert runtime.deliverer.deliver(held).status == DeliveryStatus.SUCCEEDED
    assert len(handler.requests) == 3


def test_the_last_attempt_of_an_exhausted_delivery_says_so(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """A retryable failure with no delay left is recorded as 'exhausted', not 'retry'."""
    clock = ManualClock(T0)
    runtime = make_runtime(
        sqlite_url,
        transport=httpx.MockTransport(Handler(500)),
        clock=clock,
        retry_schedule=(timedelta(seconds=1),),
    )
    _, _, delivery = one_delivery(runtime, add_endpoint, clock)
    runtime.deliverer.deliver(delivery.id)
    clock.now += timedelta(seconds=1)
    assert runtime.deliverer.deliver(delivery.id).status == DeliveryStatus.FAILED
    assert [a.outcome for a in attempts_of(runtime, delivery.id)] == ["retry", "exhausted"]


def test_success_stamps_and_resets_endpoint_health(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """A 2xx on a healthy endpoint stamps last_success_at (at most once a second, without
    the endpoint lock); a 2xx after a failure resets the failure streak."""
    handler = Handler(200, 500, 200)
    clock = ManualClock(T0)
    runtime = make_runtime(
        sqlite_url,
        transport=httpx.MockTransport(handler),
        clock=clock,
        retry_schedule=(timedelta(seconds=1),),
    )
    created = add_endpoint(runtime, url="https://receiver.example/hook")
    with runtime.sessions() as session, session.begin():
        for i in range(3):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i}, clock=clock)
    runtime.poller().poll_once()
    with runtime.sessions() as session:
        first, second, third = session.scalars(select(Delivery.id).order_by(Delivery.id)).all()

    def endpoint() -> Any:
        with runtime.sessions() as session:
            return session.get_one(Endpoint, created.endpoint.id)

    runtime.deliverer.deliver(first)
    assert endpoint().last_success_at == T0
    runtime.deliverer.deliver(second)  # 500
    assert endpoint().consecutive_failures == 1
    clock.now += timedelta(milliseconds=500)
    runtime.deliverer.deliver(third)  # 200 after a failure: the locked path resets
    healthy = endpoint()
    assert healthy.consecutive_failures == 0 and healthy.failing_since is None
    assert healthy.last_success_at == clock.now


def test_racing_successes_stamp_the_endpoint_once(
    postgres_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """Eight threads recording 2xx at the same moment on a healthy endpoint write its
    ``last_success_at`` once: the staleness check is in the UPDATE's WHERE, not only in
    the read before it."""
    from sqlalchemy import event

    from outbox.namespace import namespace_of

    clock = ManualClock(T0)
    runtime = make_runtime(
        postgres_url, transport=httpx.MockTransport(Handler(*[200] * 8)), clock=clock
    )
    add_endpoint(runtime, url="https://receiver.example/hook", max_concurrency=8)
    with runtime.sessions() as session, session.begin():
        for i in range(8):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i}, clock=clock)
    runtime.poller().poll_once()
    with runtime.sessions() as session:
        ids = session.scalars(select(Delivery.id)).all()
    stamped: list[int] = []
    update_endpoints = f"UPDATE {namespace_of(runtime.engine).qualified('endpoints')}".upper()

    def count(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(update_endpoints):
            stamped.append(cursor.rowcount)

    event.listen(runtime.engine, "after_cursor_execute", count)
    start = threading.Barrier(len(ids))

    def deliver(delivery_id: str) -> None:
        start.wait(5)
        runtime.deliverer.deliver(delivery_id)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    with runtime.sessions() as session:
        assert set(session.scalars(select(Delivery.status))) == {DeliveryStatus.SUCCEEDED}
    assert sum(stamped) == 1
