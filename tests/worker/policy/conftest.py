"""Fixtures for the delivery-policy, endpoint-health and security tests.

``harness`` drives the real delivery engine one call at a time with a clock the test moves,
against a real HTTP receiver on loopback and a real database, so every policy decision
can be observed without sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog
from sqlalchemy import select

from outbox import Attempt, Delivery, Endpoint, Event, Poller, publish
from tests.conftest import ManualClock
from worker.engine.results import Result
from worker.endpoints import NewSecret
from worker.receiver import Receiver, Reply
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
        """One call of the engine for one delivery."""
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


@pytest.fixture
def make_harness(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Callable[..., NewSecret],
    receiver: Receiver,
) -> Callable[..., Harness]:
    """Builder: ``make_harness(database_url, **settings_overrides)``."""

    def build(database_url: str, **overrides: Any) -> Harness:
        clock = ManualClock()
        runtime = make_runtime(database_url, clock=clock, **overrides)
        return Harness(runtime, clock, receiver, add_endpoint)

    return build


@pytest.fixture
def harness(make_harness: Callable[..., Harness], sqlite_url: str) -> Harness:
    """A harness on SQLite with the test settings."""
    return make_harness(sqlite_url)


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


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def statuses(runtime: Runtime, endpoint_id: str | None = None) -> list[str]:
    """Every delivery's status (of one endpoint, if given)."""
    query = select(Delivery.status)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    with runtime.sessions() as session:
        return list(session.scalars(query))


@pytest.fixture
def slow_server() -> Iterator[Callable[[Sequence[bytes], float], str]]:
    """Builder: a raw TCP server on loopback that answers every connection by writing
    ``chunks`` with ``pause`` seconds between them; returns its ``http://`` base URL."""
    from tests.worker.policy.rawserver import RawServer

    servers: list[RawServer] = []

    def build(chunks: Sequence[bytes], pause: float) -> str:
        server = RawServer(chunks, pause)
        servers.append(server)
        return server.start()

    yield build
    for server in servers:
        server.stop()


@contextmanager
def logging_restored() -> Iterator[None]:
    """Put structlog's and the standard library's logging back as they were: the
    command line configures both onto its own (then closed) stream."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


def run_cli(env: dict[str, str], *args: str) -> Any:
    """Run ``catentio-webhooks ARGS`` through its real entry point with ``env`` (stdout
    and stderr kept apart); logging is left as it was found."""
    from click.testing import CliRunner

    from worker.cli import main

    with logging_restored():
        return CliRunner().invoke(main, list(args), env=env)


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a command line run against ``database_url``."""
    from tests.conftest import TEST_KEY

    return {
        "DATABASE_URL": database_url,
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CATENTIO_LOG_LEVEL": "INFO",
        "CATENTIO_LOG_FORMAT": "json",
        "REDIS_URL": "",
        **extra,
    }


@pytest.fixture
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event of the test, at every level (whatever level an earlier
    test configured), as dicts; logging is left as it was found."""
    with logging_restored():
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
        with structlog.testing.capture_logs() as logs:
            yield logs
