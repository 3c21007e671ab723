"""Bounded waits on our own dependencies, and one clear line instead of a traceback.

Real processes: a database that accepts TCP and never answers, a dead or unresolvable
Redis, keys that cannot open the stored secrets, unsupported URLs, another
application's ``alembic_version``. Each ends in bounded time with one ``error:`` line
(and at most one ``startup.waiting`` line before it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from outbox.database import make_engine
from tests.support.cli import run_cli
from tests.support.services import TEST_KEY

OTHER_KEY = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDE="


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    yield server.getsockname()[1]
    server.close()


def run(env: dict[str, str], *args: str, timeout: float = 60) -> tuple[int, list[str], float]:
    """Run ``catentio-webhooks ARGS``; (exit code, stderr lines, seconds taken)."""
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CATENTIO_LOG_FORMAT": "json",
        **env,
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return done.returncode, lines, time.monotonic() - started


def _one_error_line(lines: list[str]) -> str:
    """The last line is the one ``error:`` line; every other line is JSON."""
    assert lines, "nothing on stderr"
    assert lines[-1].startswith("error: "), lines
    assert sum(line.startswith("error: ") for line in lines) == 1, lines
    for line in lines[:-1]:
        json.loads(line)
    assert not any("Traceback" in line for line in lines), lines
    return lines[-1]


def test_a_database_that_never_answers_fails_a_command_in_bounded_time(
    black_hole: int,
) -> None:
    """`deliveries list` against a server that accepts TCP and never answers: exit 1
    with `error: database unavailable: …` after the connect timeout, not a hang."""
    env = {
        "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{black_hole}/none",
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_DATABASE_CONNECT_TIMEOUT": "2s",
    }
    code, lines, took = run(env, "deliveries", "list", timeout=30)
    assert code == 1, lines
    assert _one_error_line(lines).startswith("error: database unavailable: ")
    assert took < 20


def test_a_poller_waits_for_the_database_once_then_gives_up(black_hole: int) -> None:
    """`poller` logs one `startup.waiting` line naming the database and, past
    CATENTIO_STARTUP_TIMEOUT, stops with exit 1 and one line."""
    env = {
        "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{black_hole}/none",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_DATABASE_CONNECT_TIMEOUT": "1s",
        "CATENTIO_STARTUP_TIMEOUT": "3s",
    }
    code, lines, took = run(env, "poller", timeout=60)
    assert code == 1, lines
    error = _one_error_line(lines)
    assert "database not ready after 3s" in error and "CATENTIO_STARTUP_TIMEOUT" in error
    waiting = [json.loads(line) for line in lines[:-1] if "startup.waiting" in line]
    assert len(waiting) == 1 and waiting[0]["waiting_for"] == "database"
    assert took < 30


@pytest.mark.parametrize(
    "redis_url", ["redis://127.0.0.1:1/0", "redis://no-such-host.invalid:6379/0"]
)
def test_a_worker_waits_for_redis_once_then_gives_up(migrated: str, redis_url: str) -> None:
    """A worker pointed at a dead or unresolvable Redis: one `startup.waiting` line,
    then exit 1 with one line past the bound (no CRITICAL line every 3 s, for ever)."""
    env = {
        "DATABASE_URL": migrated,
        "REDIS_URL": redis_url,
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_STARTUP_TIMEOUT": "2s",
    }
    code, lines, took = run(env, "worker", timeout=60)
    assert code == 1, lines
    error = _one_error_line(lines)
    assert "redis not ready after 2s" in error
    waiting = [json.loads(line) for line in lines[:-1] if "startup.waiting" in line]
    assert len(waiting) == 1 and waiting[0]["waiting_for"] == "redis"
    assert not any("CRITICAL" in line or '"critical"' in line for line in lines)
    assert took < 30


def test_keys_that_cannot_open_the_stored_secrets_refuse_to_start(
    database_url: str, make_runtime: Any, add_endpoint: Any, redis_server: str
) -> None:
    """A well-formed but wrong CATENTIO_ENCRYPTION_KEYS: the worker refuses to start
    with one line naming the variable (exit 2), instead of a traceback per message."""
    runtime = make_runtime(database_url)
    add_endpoint(runtime)
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server,
        "CATENTIO_ENCRYPTION_KEYS": OTHER_KEY,
        "CATENTIO_STARTUP_TIMEOUT": "5s",
    }
    for command in ("worker", "poller"):
        code, lines, _ = run(env, command)
        assert code == 2, lines
        assert "CATENTIO_ENCRYPTION_KEYS" in _one_error_line(lines)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://root@127.0.0.1/test"),
        ("DATABASE_URL", "postgresql+psycopg2://u:hunter2@127.0.0.1/db"),
        ("DATABASE_URL", "postgresql+asyncpg://u@127.0.0.1/db"),
        ("REDIS_URL", "notaurl"),
        ("REDIS_URL", "http://127.0.0.1:6379/"),
    ],
)
def test_unsupported_urls_are_one_line_and_exit_2(name: str, value: str, sqlite_url: str) -> None:
    """An unsupported DATABASE_URL or REDIS_URL: one `error:` line saying what is
    supported (never the password), exit 2, and no traceback."""
    env = {"DATABASE_URL": sqlite_url, name: value}
    for args in (("deliveries", "list"), ("worker",)):
        result = run_cli(env, *args)
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1, lines
        error = _one_error_line(lines)
        assert name in error and "supported" in error
        assert "hunter2" not in error


def test_another_applications_alembic_version_is_one_clear_line(postgres_url: str) -> None:
    """A schema whose alembic_version belongs to another application: `db upgrade`
    and `poller` each say so in one line instead of an Alembic traceback."""
    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE alembic_version (version_num varchar(32))"))
        connection.execute(sa.text("INSERT INTO alembic_version VALUES ('3f2a9c0d1e7b')"))
    engine.dispose()
    env = {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
    }
    for args in (("db", "upgrade"), ("poller",)):
        code, lines, _ = run(env, *args)
        assert code == 2, lines
        assert "not a catentio-webhooks migration" in _one_error_line(lines)
