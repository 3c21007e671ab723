"""The real delivery engine driven one call at a time, with a clock the test moves.

Against a real HTTP receiver on loopback and a real database, every policy decision
(retry, hold, probe, disable) can be observed without sleeping. ``Gauge`` and
``Switch`` are receiver behaviours for the tests that need to watch or steer it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from outbox import Attempt, Delivery, Endpoint, Event, publish
from tests.support.clock import ManualClock
from worker.demo.receiver import Receiver, Reply, always
from worker.endpoints.registry import NewSecret
from worker.engine.results import Result
from worker.fanout.poller import Poller
from worker.runtime import Runtime


@dataclass
class Harness:
    """One runtime (no worker threads), a manual clock and a receiver."""

    runtime: Runtime
    clock: ManualClock
    receiver: Receiver
    add: Callable[..., NewSecret]
    rung: list[str] = field(default_factory=list)

    def endpoint(self, path: str = "/hook", **kwargs: Any) -> NewSecret:
        """Register an endpoint whose receiver route answers with ``behaviour``."""
        return self.add(self.runtime, receiver=self.receiver, path=path, **kwargs)

    def publish(
        self, count: int = 1, *, type: str = "run.succeeded", workspace: str = "ws_a"
    ) -> list[Event]:
        """Publish ``count`` events at the clock's time."""
        with self.runtime.sessions() as session, session.begin():
            return [
                publish(session, workspace_id=workspace, type=type, data={"n": i}, clock=self.clock)
                for i in range(count)
            ]

    def fan_out(self) -> list[str]:
        """Run one poll; returns the ids of the new pending deliveries, oldest first."""
        before = len(self.rung)
        Poller(
            session_factory=self.runtime.sessions, dispatch=self.rung.extend, clock=self.clock
        ).poll_once()
        return self.rung[before:]

    def deliveries(self, count: int = 1, **kwargs: Any) -> list[str]:
        """Publish ``count`` events and fan them out."""
        self.publish(count, **kwargs)
        return self.fan_out()

    def deliver(self, delivery_id: str) -> Result:
        """One call of the engine for one delivery (claim, send, record, wait)."""
        return self.runtime.deliverer.deliver(delivery_id)

    def due(self, delivery_id: str) -> Result:
        """Move the clock to the delivery's next attempt time, then deliver it."""
        row = self.delivery(delivery_id)
        assert row.next_attempt_at is not None
        self.clock.now = max(self.clock.now, row.next_attempt_at)
        return self.deliver(delivery_id)

    def delivery(self, delivery_id: str) -> Delivery:
        with self.runtime.sessions() as session:
            return session.get_one(Delivery, delivery_id)

    def endpoint_row(self, endpoint_id: str) -> Endpoint:
        with self.runtime.sessions() as session:
            return session.get_one(Endpoint, endpoint_id)

    def attempts(self, delivery_id: str) -> list[Attempt]:
        with self.runtime.sessions() as session:
            query = select(Attempt).where(Attempt.delivery_id == delivery_id)
            return list(session.scalars(query.order_by(Attempt.number)))

    def events(self, type: str) -> list[Event]:
        with self.runtime.sessions() as session:
            return list(session.scalars(select(Event).where(Event.type == type)))

    def update_endpoint(self, endpoint_id: str, **values: Any) -> None:
        """Change an endpoint's row behind the API's back (as SQL by hand would)."""
        with self.runtime.sessions() as session, session.begin():
            endpoint = session.get_one(Endpoint, endpoint_id)
            for name, value in values.items():
                setattr(endpoint, name, value)


class Gauge:
    """A receiver behaviour that holds each request for ``hold`` seconds and records how
    many were being held at once."""

    def __init__(self, hold: float, status: int = 200) -> None:
        self.hold = hold
        self.status = status
        self.current = 0
        self.peak = 0
        self.total = 0
        self._lock = threading.Lock()

    def __call__(self, _n: int) -> Reply:
        with self._lock:
            self.current += 1
            self.total += 1
            self.peak = max(self.peak, self.current)
        time.sleep(self.hold)
        with self._lock:
            self.current -= 1
        return Reply(self.status)


class Switch:
    """A receiver behaviour the test changes while it runs; ``gate`` (if set) holds each
    request until the test opens it."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.gate: threading.Event | None = None
        self.arrived = threading.Event()

    def __call__(self, _n: int) -> Reply:
        self.arrived.set()
        if self.gate is not None:
            self.gate.wait(10)
        return Reply(self.status)


def statuses(runtime: Runtime, endpoint_id: str | None = None) -> list[str]:
    """Every delivery's status (of one endpoint, if given)."""
    query = select(Delivery.status)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    with runtime.sessions() as session:
        return list(session.scalars(query))


def add_hanging(
    add_endpoint: Callable[..., NewSecret],
    runtime: Runtime,
    receiver: Receiver,
    *,
    max_concurrency: int,
) -> NewSecret:
    """An endpoint of workspace ``ws_hang`` whose receiver accepts and never answers
    (for 30 s, past any test's deadline), at ``/hang``."""
    return add_endpoint(
        runtime,
        receiver=receiver,
        path="/hang",
        workspace_id="ws_hang",
        behaviour=always(200, delay=30.0),
        max_concurrency=max_concurrency,
    )
