"""Outages of our own database or broker are one state change, not a flood.

A real `poller` and `worker` process reach PostgreSQL (or Redis) through a TCP proxy on
loopback that the test cuts for 4 s: an outage of *this test's* database only, while
the shared server keeps running. Every line the processes write must be JSON, the
outage must be told once (``…unavailable``) and its end once (``…recovered``, with its
duration), the total must stay a few dozen lines, and every event must still arrive.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from outbox import publish
from tests.support.processes import Spawn, spawner
from tests.support.services import db_schema_of
from tests.support.tcp_proxy import TcpProxy
from worker.demo.receiver import Receiver, always

OUTAGE_SECONDS = 4.0
EVENTS_BEFORE = 30
EVENTS_DURING = 10

ROUTINE = {"delivery.attempted", "outbox.fanned_out", "outbox.swept"}
"""One line per attempt or per batch: work being done, not noise."""


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    with spawner(
        CATENTIO_POLL_INTERVAL="50ms",
        CATENTIO_SWEEP_INTERVAL="1s",
        CATENTIO_SWEEP_AFTER="2s",
        CATENTIO_RETRY_SCHEDULE="200ms,200ms,200ms",
    ) as start:
        yield start


def _stop(process: subprocess.Popen[str]) -> list[str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-3000:]
    return [line for line in (out + err).splitlines() if line.strip()]


def _publish(runtime: Any, count: int, offset: int = 0) -> None:
    with runtime.sessions() as session, session.begin():
        for i in range(count):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": offset + i})


def _events(lines: list[str]) -> list[dict[str, Any]]:
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line[:300]!r}")
    return parsed


def _check_quiet_outage(name: str, per_process: dict[str, list[dict[str, Any]]]) -> int:
    """Each process told the outage once and its end once; returns the noise count."""
    noise = 0
    for process, events in per_process.items():
        kinds = [e["event"] for e in events]
        assert kinds.count(f"{name}.unavailable") <= 1, (process, kinds)
        assert kinds.count(f"{name}.recovered") == kinds.count(f"{name}.unavailable")
        for event in events:
            if event["event"] == f"{name}.recovered":
                assert event["outage_s"] >= 1.0, event
            assert "Traceback" not in json.dumps(event), event
        noise += sum(1 for k in kinds if k not in ROUTINE)
    told = sum(e["event"] == f"{name}.unavailable" for es in per_process.values() for e in es)
    assert told >= 1, per_process
    return noise


def _run_outage(
    *,
    spawn: Any,
    receiver: Receiver,
    runtime: Any,
    add_endpoint: Any,
    env: dict[str, str],
    proxy: TcpProxy,
) -> dict[str, list[dict[str, Any]]]:
    add_endpoint(runtime, receiver=receiver, path="/hook", behaviour=always(200, delay=0.05))
    _publish(runtime, EVENTS_BEFORE)
    processes = {"poller": spawn(env, "poller"), "worker": spawn(env, "worker", "--threads", "2")}
    assert receiver.wait_for(3, path="/hook", timeout=60)
    proxy.cut()
    _publish(runtime, EVENTS_DURING, offset=EVENTS_BEFORE)  # our session, not the proxy
    time.sleep(OUTAGE_SECONDS)
    proxy.restore()
    total = EVENTS_BEFORE + EVENTS_DURING
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ids = {r.headers["webhook-id"] for r in receiver.received("/hook")}
        if len(ids) >= total:
            break
        time.sleep(0.2)
    ids = {r.headers["webhook-id"] for r in receiver.received("/hook")}
    lines = {name: _stop(process) for name, process in processes.items()}
    assert len(ids) == total, f"{len(ids)} of {total} events arrived"
    return {name: _events(found) for name, found in lines.items()}


def test_a_database_outage_is_one_state_change(
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Receiver,
    spawn: Any,
) -> None:
    """A 4 s outage of our database: a few dozen JSON lines, not thousands; one
    `database.unavailable` and one `database.recovered` per process; all delivered."""
    runtime = make_runtime(postgres_url)
    direct = make_url(postgres_url)
    with TcpProxy(direct.host or "127.0.0.1", direct.port or 5432) as proxy:
        env = {
            "DATABASE_URL": direct.set(port=proxy.port).render_as_string(hide_password=False),
            "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url),
            "REDIS_URL": redis_server,
            "CATENTIO_REDIS_NAMESPACE": redis_namespace,
        }
        per_process = _run_outage(
            spawn=spawn,
            receiver=receiver,
            runtime=runtime,
            add_endpoint=add_endpoint,
            env=env,
            proxy=proxy,
        )
    noise = _check_quiet_outage("database", per_process)
    every = sum(len(events) for events in per_process.values())
    print(f"database outage: {every} lines in all, {noise} besides attempts and batches")
    assert noise <= 30, [e["event"] for es in per_process.values() for e in es]
    assert every <= EVENTS_BEFORE + EVENTS_DURING + 60


def test_a_broker_outage_is_one_state_change(
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Receiver,
    spawn: Any,
) -> None:
    """A 4 s outage of Redis: the same bounded, JSON-only story, `broker.unavailable`
    then `broker.recovered`, and every event arrives (the sweeper rings what was lost)."""
    runtime = make_runtime(postgres_url)
    direct = make_url(redis_server)
    with TcpProxy(direct.host or "127.0.0.1", direct.port or 6379) as proxy:
        env = {
            "DATABASE_URL": postgres_url,
            "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url),
            "REDIS_URL": direct.set(port=proxy.port).render_as_string(hide_password=False),
            "CATENTIO_REDIS_NAMESPACE": redis_namespace,
        }
        per_process = _run_outage(
            spawn=spawn,
            receiver=receiver,
            runtime=runtime,
            add_endpoint=add_endpoint,
            env=env,
            proxy=proxy,
        )
    noise = _check_quiet_outage("broker", per_process)
    every = sum(len(events) for events in per_process.values())
    print(f"broker outage: {every} lines in all, {noise} besides attempts and batches")
    assert noise <= 30, [e["event"] for es in per_process.values() for e in es]
    assert every <= EVENTS_BEFORE + EVENTS_DURING + 60
