"""Pooled PostgreSQL connections: pinged only after sitting idle, so a server that
dropped them costs a reconnect, and a connection in steady use costs no extra round
trip per transaction."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outbox.database import make_engine, normalize_url

PING_AFTER = 0.3


@pytest.fixture
def engine(
    request: pytest.FixtureRequest, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Engine, list[int]]]:
    """An engine on one pooled connection, pinged after ``PING_AFTER`` seconds idle (or
    as many as the test's indirect parameter says), and the pings it has made."""
    after = float(getattr(request, "param", PING_AFTER))
    made = make_engine(postgres_url, ping_after=after, pool_size=1, max_overflow=0)
    pings: list[int] = []
    ping = made.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return ping(dbapi_connection)

    monkeypatch.setattr(made.dialect, "do_ping", counted)
    yield made, pings
    made.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.begin() as connection:
        return int(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def terminate(admin: Engine, pid: int) -> None:
    """End backend ``pid`` and wait until it has gone."""
    with admin.begin() as connection:
        connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    gone = sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with admin.begin() as connection:
            if connection.execute(gone, {"pid": pid}).scalar_one() == 0:
                return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} is still there")


def test_a_connection_in_steady_use_is_not_pinged(engine: tuple[Engine, list[int]]) -> None:
    made, pings = engine
    pids = {backend_pid(made) for _ in range(20)}
    assert len(pids) == 1 and pings == []
    time.sleep(PING_AFTER + 0.1)
    assert backend_pid(made) in pids and pings == [1]  # idle: pinged once, still alive


def test_an_idle_connection_the_server_dropped_is_replaced(
    engine: tuple[Engine, list[int]], postgres_server: str
) -> None:
    made, pings = engine
    first = backend_pid(made)
    admin = sa.create_engine(normalize_url(postgres_server))
    try:
        terminate(admin, first)
        time.sleep(PING_AFTER + 0.1)
        second = backend_pid(made)  # no error: the ping found it dead, the pool reconnected
    finally:
        admin.dispose()
    assert second != first and pings == [1]


@pytest.mark.parametrize("engine", [60.0], indirect=True)  # "a moment", however slow
def test_a_drop_between_two_quick_transactions_fails_one_as_an_outage(
    engine: tuple[Engine, list[int]], postgres_server: str
) -> None:
    """The trade-off, stated: the one transaction that meets a connection dropped a
    moment after its last use fails with the connection invalidated (callers on the
    delivery path retry it once), and the next one reconnects."""
    made, pings = engine
    first = backend_pid(made)
    admin = sa.create_engine(normalize_url(postgres_server))
    try:
        terminate(admin, first)
        with pytest.raises(sa.exc.DBAPIError) as failed:
            backend_pid(made)
    finally:
        admin.dispose()
    assert failed.value.connection_invalidated
    assert backend_pid(made) != first and pings == []
