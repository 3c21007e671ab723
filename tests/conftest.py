"""Shared fixtures: databases (SQLite and PostgreSQL), Redis, a receiver, runtimes.

Tests that need PostgreSQL or Redis get them from the ``postgres_url`` and
``redis_url`` fixtures. When the server does not answer, the test is skipped on a
developer machine but **fails** under ``CI=true``: CI must never pass by skipping.

Isolation without touching anyone else's data: every PostgreSQL test gets its own
schema (dropped afterwards) and every Redis test its own key namespace (its keys are
deleted afterwards); nothing is flushed.
"""

from __future__ import annotations

import ipaddress
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from outbox.database import normalize_url
from outbox.migrate import upgrade
from worker.demo.receiver import Behaviour, Receiver
from worker.endpoints.registry import NewSecret, create_endpoint
from worker.runtime import Runtime
from worker.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get(
    "CATENTIO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CATENTIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# A fixed Fernet key for tests only, so every module that imports it sees the same one.
TEST_KEY = "OSk80ULaPv2qA-P6eOPwolNIvZ13H-ohloVJ6RIHwJU="


class ManualClock:
    """A clock that only moves when the test says so (``clock.now += …`` or ``advance``)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def service_missing(name: str, error: BaseException) -> None:
    """Skip locally, fail under CI: a missing service must never look like a pass."""
    message = f"{name} is not reachable: {error}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services are required)", pytrace=False)
    pytest.skip(message)


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


def fast_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: loopback allowed, short schedule and timeouts, a fixed key."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "allowed_networks": LOOPBACK,
        "retry_schedule": (timedelta(milliseconds=100),) * 3,
        "retry_jitter": 0.0,
        "request_timeout": 5.0,
        "connect_timeout": 2.0,
        "poll_interval": 0.02,
        "sweep_interval": 0.5,
        "sweep_after": timedelta(seconds=2),
        "worker_threads": 4,
        "encryption_keys": (TEST_KEY,),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_runtime() -> Iterator[Callable[..., Runtime]]:
    """Builder: ``make_runtime(database_url, **settings_overrides)``; closed afterwards."""
    opened: list[Runtime] = []

    def build(
        database_url: str, *, transport: Any = None, clock: Any = None, **overrides: Any
    ) -> Runtime:
        kwargs: dict[str, Any] = {"migrate": True}
        if transport is not None:
            kwargs["transport"] = transport
        if clock is not None:
            kwargs["clock"] = clock
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
