"""Ordered delivery (``endpoints.ordering = fifo``): one in flight, strict event order,
and a failing head blocks the deliveries behind it until it is done."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from outbox import DeliveryStatus, Endpoint, publish
from tests.worker.policy.conftest import Harness, statuses, wait_until
from worker.admission import Hold
from worker.receiver import Receiver, Reply
from worker.runtime import Runtime


def fifo(runtime: Runtime) -> None:
    with runtime.sessions() as session, session.begin():
        for endpoint in session.scalars(select(Endpoint)):
            endpoint.ordering = "fifo"


class FailFirst:
    """A receiver behaviour: the first ``failures`` requests (of any event) get 500."""

    def __init__(self, failures: int) -> None:
        self.left = failures
        self._lock = threading.Lock()

    def __call__(self, _n: int) -> Reply:
        with self._lock:
            self.left -= 1
            return Reply(500 if self.left >= 0 else 200)


def test_the_events_arrive_in_order_and_a_failing_head_blocks_the_rest(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    database_url: str,
) -> None:
    """Six events through the real workers: the head fails twice (retried on the
    schedule) and nothing behind it is sent meanwhile; then the rest, one by one, in
    the order they were published."""
    runtime = make_runtime(database_url, worker_threads=4)
    add_endpoint(runtime, receiver=receiver, behaviour=FailFirst(2), max_concurrency=10)
    fifo(runtime)
    with runtime.sessions() as session, session.begin():
        events = [
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i})
            for i in range(6)
        ]
    with runtime.running():
        assert wait_until(lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 6)
    order = [r.headers["webhook-id"] for r in receiver.received()]
    ids = [e.id for e in events]
    assert order == [ids[0]] * 3 + ids[1:]
    arrivals = [r.at for r in receiver.received()]
    assert arrivals == sorted(arrivals)


def test_one_at_a_time_the_ones_behind_are_held_until_the_head_is_done(
    harness: Harness,
) -> None:
    """Driven one call at a time: a message for the second delivery sends the head
    instead and holds the second (``ordering``); once the head has failed for good,
    the second goes."""
    harness.endpoint(behaviour=lambda _n: Reply(500))
    fifo(harness.runtime)
    head, second = harness.deliveries(2)
    assert harness.deliver(second).held_by == Hold.ORDERING
    assert harness.delivery(head).attempt_count == 1  # sent by that very message
    assert len(harness.receiver.received()) == 1
    for _ in range(3):  # the schedule's three retries, then exhausted
        harness.due(head)
    assert harness.delivery(head).status == DeliveryStatus.FAILED
    assert harness.delivery(second).attempt_count == 0
    harness.due(second)
    row = harness.delivery(second)
    assert (row.attempt_count, row.held_by) == (1, None)
    sent = [r.headers["x-catentio-delivery-id"] for r in harness.receiver.received()]
    assert sent == [head] * 4 + [second]
