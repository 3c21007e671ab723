"""Shared fixtures: databases (SQLite and PostgreSQL), Redis, a receiver, runtimes.

Tests that need PostgreSQL or Redis get them from the ``postgres_url`` and
``redis_server`` fixtures (or the ``database_url``/``backend`` parameters that use them),
and are marked ``postgres``/``redis`` for it, so ``-m "not postgres and not redis"``
runs the rest. When the server does not answer, the test is skipped on a developer
machine but **fails** under ``CI=true``: CI must never pass by skipping.

Benchmarks (``tests/bench``) measure, they do not test: they are collected only when
asked for, with any of::

    CATENTIO_BENCH=1 python -m pytest tests/bench
    python -m pytest tests/bench --run-bench
    python -m pytest tests -m bench

Named without being asked for (``python -m pytest tests/bench``), they are skipped.

Isolation without touching anyone else's data: every PostgreSQL test gets its own
schema (dropped afterwards) and every Redis test its own key namespace (its keys are
deleted afterwards); nothing is flushed.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from outbox.database import normalize_url
from outbox.migrate import upgrade
from tests.support.services import (
    ANYWHERE,
    POSTGRES_URL,
    REDIS_URL,
    fast_settings,
    service_missing,
)
from worker.demo.receiver import Behaviour, Receiver
from worker.endpoints.registry import NewSecret, create_endpoint
from worker.logs import configure_logging
from worker.runtime import Runtime

BENCH = Path(__file__).with_name("bench")

SERVICE_FIXTURES = {
    "postgres": {"postgres_server", "postgres_url"},
    "redis": {"redis_server", "redis_namespace"},
}
"""The fixtures that need each service; a test using one gets the service's marker."""

SERVICE_PARAMETERS = {
    ("database_url", "postgres"): ("postgres",),
    ("backend", "distributed"): ("postgres", "redis"),
}
"""Parameters that ask for a service through ``request.getfixturevalue``."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--run-bench``: collect and run the benchmarks."""
    parser.addoption("--run-bench", action="store_true", default=False, help="run the benchmarks")


def _bench_asked(config: pytest.Config) -> bool:
    if os.environ.get("CATENTIO_BENCH") == "1" or config.getoption("--run-bench"):
        return True
    return "bench" in (config.getoption("markexpr", default="") or "")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave tests/bench out unless it is asked for or named on the command line."""
    if collection_path != BENCH or _bench_asked(config):
        return None
    named = (Path(arg.split("::")[0]).resolve() for arg in config.args)
    if any(path == BENCH or BENCH in path.parents for path in named):
        return None
    return True


def _services(item: pytest.Item) -> set[str]:
    names = set(getattr(item, "fixturenames", ()))
    wanted = {marker for marker, fixtures in SERVICE_FIXTURES.items() if names & fixtures}
    callspec = getattr(item, "callspec", None)
    for (name, value), markers in SERVICE_PARAMETERS.items():
        if callspec is not None and callspec.params.get(name) == value:
            wanted.update(markers)
    return wanted


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with the services it needs; skip benchmarks named but not asked for."""
    skip_bench = pytest.mark.skip(
        reason="benchmark: set CATENTIO_BENCH=1, or use --run-bench / -m bench"
    )
    bench_asked = _bench_asked(config)
    for item in items:
        for marker in sorted(_services(item)):
            item.add_marker(marker)
        if not bench_asked and item.get_closest_marker("bench") is not None:
            item.add_marker(skip_bench)


@pytest.fixture(scope="session", autouse=True)
def quiet_logs() -> None:
    """Warnings and errors only, as JSON on stderr, for the whole session, as the command
    line configures it: a log line no test reads costs nothing. Tests that read logs
    lower the level themselves (``captured_logs``, ``LOGGED``)."""
    configure_logging(level="WARNING", fmt="json", stream=sys.stderr)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server URL, once checked to answer."""
    try:
        engine = sa.create_engine(normalize_url(POSTGRES_URL), connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(normalize_url(postgres_server))
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(str(normalize_url(postgres_server))).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    """A SQLite file of this test's own."""
    return f"sqlite:///{tmp_path / 'catentio.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def migrated(database_url: str) -> str:
    """``database_url`` with the schema migrated."""
    from outbox.database import make_engine

    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    return database_url


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The Redis URL, once checked to answer."""
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:
        service_missing("Redis", exc)
    return REDIS_URL


@pytest.fixture
def redis_namespace(redis_server: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    namespace = f"catentio-test-{uuid.uuid4().hex[:12]}"
    yield namespace
    client = redis.Redis.from_url(redis_server)
    keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A verifying webhook receiver on 127.0.0.1."""
    with Receiver() as server:
        yield server


@pytest.fixture
def make_runtime() -> Iterator[Callable[..., Runtime]]:
    """Builder: ``make_runtime(database_url, **settings_overrides)``; closed afterwards."""
    opened: list[Runtime] = []

    def build(
        database_url: str,
        *,
        transport: Any = None,
        clock: Any = None,
        tracing: Any = None,
        **overrides: Any,
    ) -> Runtime:
        kwargs: dict[str, Any] = {"migrate": True}
        if transport is not None:
            kwargs["transport"] = transport
        if clock is not None:
            kwargs["clock"] = clock
        if tracing is not None:
            kwargs["tracing"] = tracing
        runtime = Runtime.open(fast_settings(database_url, **overrides), **kwargs)
        opened.append(runtime)
        return runtime

    yield build
    for runtime in reversed(opened):
        runtime.close()


@pytest.fixture
def add_endpoint() -> Callable[..., NewSecret]:
    """Builder: register an endpoint (and, with a receiver, its verifying route)."""

    def add(
        runtime: Runtime,
        *,
        receiver: Receiver | None = None,
        path: str = "/hook",
        url: str | None = None,
        workspace_id: str = "ws_a",
        event_types: tuple[str, ...] = ("*",),
        behaviour: Behaviour | None = None,
        **kwargs: Any,
    ) -> NewSecret:
        target = url or (receiver.base_url + path if receiver else "https://example.invalid/x")
        with runtime.sessions() as session, session.begin():
            created = create_endpoint(
                session,
                runtime.box,
                workspace_id=workspace_id,
                url=target,
                event_types=list(event_types),
                # Register anything: tests of the send-time SSRF guard need rows the
                # registration check would refuse (it has tests of its own).
                allowed_networks=kwargs.pop("allowed_networks", ANYWHERE),
                **kwargs,
            )
        if receiver is not None and url is None:
            receiver.route(path, secret=created.secret, behaviour=behaviour)
        return created

    return add


@pytest.fixture(params=["embedded", "distributed"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides for both modes: SQLite + in-process broker, and PostgreSQL +
    Redis (each test gets its own schema and Redis namespace)."""
    if request.param == "embedded":
        return {"database_url": request.getfixturevalue("sqlite_url")}
    return {
        "database_url": request.getfixturevalue("postgres_url"),
        "redis_url": request.getfixturevalue("redis_server"),
        "redis_namespace": request.getfixturevalue("redis_namespace"),
    }
