"""Fixtures of the worker's tests: the engine harness, a raw TCP server, logs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import structlog

from tests.support.cli import logging_restored
from tests.support.clock import ManualClock
from tests.support.harness import Harness
from tests.support.rawserver import RawServer
from worker.demo.receiver import Receiver
from worker.endpoints.registry import NewSecret
from worker.runtime import Runtime


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


@pytest.fixture
def slow_server() -> Iterator[Callable[[Sequence[bytes], float], str]]:
    """Builder: a raw TCP server on loopback that answers every connection by writing
    ``chunks`` with ``pause`` seconds between them; returns its ``http://`` base URL."""
    servers: list[RawServer] = []

    def build(chunks: Sequence[bytes], pause: float) -> str:
        server = RawServer(chunks, pause)
        servers.append(server)
        return server.start()

    yield build
    for server in servers:
        server.stop()


@pytest.fixture
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event of the test, at every level (whatever level an earlier
    test configured), as dicts; logging is left as it was found."""
    with logging_restored():
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
        with structlog.testing.capture_logs() as logs:
            yield logs
