"""Ordered delivery (``endpoints.ordering = fifo``): one delivery in flight, strict event
order, and a failing head blocks the deliveries behind it until it is done."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from outbox import Delivery, DeliveryStatus, Endpoint, publish
from tests.support.harness import Harness, statuses
from tests.support.waiting import wait_until
from worker.demo.receiver import Receiver, Reply
from worker.policy.admission import Hold
from worker.runtime import Runtime


class FailFirst:
    """A receiver behaviour: the first ``failures`` requests (of any event) get 500."""

    def __init__(self, failures: int) -> None:
        self.left = failures
        self._lock = threading.Lock()

    def __call__(self, _n: int) -> Reply:
        with self._lock:
            self.left -= 1
            return Reply(500 if self.left >= 0 else 200)


def publish_events(runtime: Runtime, count: int) -> list[str]:
    with runtime.sessions() as session, session.begin():
        return [
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i}).id
            for i in range(count)
        ]


def test_the_events_arrive_in_order_and_a_failing_head_blocks_the_rest(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    backend: dict[str, Any],
) -> None:
    """Eight events through the real workers (SQLite and in-process broker, PostgreSQL
    and Redis): the head fails twice and is retried on the schedule while nothing behind
    it is sent; then the rest, one at a time, in the order they were published, though
    the endpoint's concurrency limit would allow ten at once."""
    runtime = make_runtime(worker_threads=4, **backend)
    add_endpoint(
        runtime, receiver=receiver, behaviour=FailFirst(2), max_concurrency=10, ordering="fifo"
    )
    ids = publish_events(runtime, 8)
    with runtime.running():
        assert wait_until(lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 8)
    received = receiver.received()
    assert [r.headers["webhook-id"] for r in received] == [ids[0]] * 3 + ids[1:]
    arrivals = [r.at for r in received]
    assert arrivals == sorted(arrivals)


def test_parallel_again_lifts_the_order(
    make_runtime: Callable[..., Runtime], add_endpoint: Any, receiver: Receiver, sqlite_url: str
) -> None:
    """``ordering = parallel`` (the default, ``NULL``) sends several at once again."""
    runtime = make_runtime(sqlite_url, worker_threads=4)
    created = add_endpoint(runtime, receiver=receiver, ordering="fifo", max_concurrency=10)
    with runtime.sessions() as session, session.begin():
        session.get_one(Endpoint, created.endpoint.id).ordering = None
    publish_events(runtime, 6)
    with runtime.running():
        assert wait_until(lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 6)


def test_one_at_a_time_the_ones_behind_are_held_until_the_head_is_done(
    harness: Harness,
) -> None:
    """Driven one call at a time: a message for the second delivery sends the head
    instead and holds the second (``ordering``); while the head waits for its retry, the
    second is held until the head is due; once the head has failed for good, the second
    goes."""
    harness.endpoint(behaviour=lambda _n: Reply(500), ordering="fifo")
    head, second = harness.deliveries(2)
    assert harness.deliver(second).held_by == Hold.ORDERING
    assert harness.delivery(head).attempt_count == 1  # sent by that very message
    assert len(harness.receiver.received()) == 1
    held = harness.delivery(second)
    assert (held.held_by, held.attempt_count, held.lease_until) == (Hold.ORDERING, 0, None)
    with harness.runtime.sessions() as session, session.begin():
        session.get_one(Delivery, second).next_attempt_at = harness.clock.now  # rung again
    head_due = harness.delivery(head).next_attempt_at
    assert head_due is not None and head_due > harness.clock.now  # its retry is scheduled
    again = harness.deliver(second)
    assert (again.status, again.held_by) == ("postponed", Hold.ORDERING)
    assert again.retry_in == head_due - harness.clock.now
    assert harness.delivery(second).next_attempt_at == head_due  # due with the head
    for _ in range(3):  # the schedule's three retries, then exhausted
        harness.due(head)
    assert harness.delivery(head).status == DeliveryStatus.FAILED
    assert harness.delivery(second).attempt_count == 0
    harness.due(second)
    row = harness.delivery(second)
    assert (row.attempt_count, row.held_by) == (1, None)
    sent = [r.headers["x-catentio-delivery-id"] for r in harness.receiver.received()]
    assert sent == [head] * 4 + [second]
    with harness.runtime.sessions() as session:
        assert session.scalars(select(Endpoint.ordering)).one() == "fifo"
