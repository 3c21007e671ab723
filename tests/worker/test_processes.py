"""The long-running commands as real processes: `run` embedded, `poller` + `worker` on
PostgreSQL and Redis, each stopped with SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from outbox import publish
from tests.support.processes import Spawn, spawner
from tests.support.services import db_schema_of

pytestmark = pytest.mark.slow  # real processes, started and stopped: seconds each


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    with spawner(
        CATENTIO_POLL_INTERVAL="50ms",
        # `run` serves the API too: on a free port, so parallel runs never collide.
        CATENTIO_RUN_API_PORT="0",
    ) as start:
        yield start


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    return process.returncode, err


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def seed(runtime: Any, add_endpoint: Any, receiver: Any, count: int) -> None:
    add_endpoint(runtime, receiver=receiver, path="/hook")
    with runtime.sessions() as session, session.begin():
        for i in range(count):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i})


def test_run_embedded_delivers_and_stops_on_sigterm(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any, receiver: Any, spawn: Any
) -> None:
    """`catentio-webhooks run` on SQLite delivers every event, then exits 0 on SIGTERM."""
    seed(make_runtime(sqlite_url), add_endpoint, receiver, 5)
    process = spawn(
        {"DATABASE_URL": sqlite_url, "CATENTIO_DB_SCHEMA": db_schema_of(sqlite_url)},
        "run",
        "--threads",
        "2",
    )
    assert receiver.wait_for(5, path="/hook", timeout=30), process.stderr
    code, err = stop(process)
    assert code == 0, err
    assert all(r.verified for r in receiver.received())
    assert '"event": "run.stopped"' in err
    lines = json_lines(err)
    assert lines and {line["process"] for line in lines} == {"run"}
    assert {line["pid"] for line in lines} == {process.pid}


def test_poller_and_worker_processes_on_postgres_and_redis(
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Any,
    spawn: Any,
) -> None:
    """Separate `poller` and two `worker` processes deliver every event exactly once."""
    seed(make_runtime(postgres_url), add_endpoint, receiver, 30)
    env = {
        "DATABASE_URL": postgres_url,
        "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url),
        "REDIS_URL": redis_server,
        "CATENTIO_REDIS_NAMESPACE": redis_namespace,
    }
    processes = [
        spawn(env, "poller"),
        spawn(env, "worker", "--threads", "2"),
        spawn(env, "worker", "--threads", "2"),
    ]
    assert receiver.wait_for(30, path="/hook", timeout=60)
    for kind, process in zip(["poller", "worker", "worker"], processes, strict=True):
        code, err = stop(process)
        assert code == 0, err
        lines = json_lines(err)
        assert lines and {(line["process"], line["pid"]) for line in lines} == {(kind, process.pid)}
    ids = [r.headers["webhook-id"] for r in receiver.received("/hook")]
    assert len(ids) == len(set(ids)) == 30


def test_worker_without_redis_explains_itself(spawn: Any, sqlite_url: str) -> None:
    """`worker` without REDIS_URL exits 2 with a one-line reason."""
    process = spawn(
        {"DATABASE_URL": sqlite_url, "CATENTIO_DB_SCHEMA": db_schema_of(sqlite_url)}, "worker"
    )
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err.strip().splitlines()[-1].startswith("error: `worker` runs one half")
