"""The engine's guarantees with real parts: worker processes of their own on PostgreSQL
and Redis (and the embedded mode), a real receiver on loopback.

* two workers racing over the same, repeatedly rung deliveries send each one once;
* a hanging endpoint holds its own budget of sockets, not the worker's threads;
* a worker killed mid-attempt: its lease outlives the attempt's deadline, so nobody
  sends the delivery again before then; afterwards the sweeper rings it and it goes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from outbox import Attempt, Delivery, DeliveryStatus, publish
from outbox.clock import utcnow
from tests.support.harness import Switch, add_hanging, statuses
from tests.support.services import TEST_KEY, db_schema_of
from tests.support.waiting import wait_until
from worker.demo.receiver import Receiver
from worker.runtime import Runtime

WORKER_SCRIPT = """
import sys
from worker.cli import main
sys.exit(main(["worker", "--threads", sys.argv[1]]))
"""


def publish_events(runtime: Runtime, count: int, workspace: str = "ws_a") -> None:
    with runtime.sessions() as session, session.begin():
        for i in range(count):
            publish(session, workspace_id=workspace, type="run.succeeded", data={"i": i})


@pytest.fixture
def workers(
    postgres_url: str, redis_server: str, redis_namespace: str, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Builder: a ``worker`` process on this test's schema and Redis namespace (its log
    in a file of the test's, shown if the test fails)."""
    started: list[subprocess.Popen[str]] = []

    def start(threads: int = 4, **env: str) -> subprocess.Popen[str]:
        full = {
            **os.environ,
            "DATABASE_URL": postgres_url,
            "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url),
            "REDIS_URL": redis_server,
            "CATENTIO_REDIS_NAMESPACE": redis_namespace,
            "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
            "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8",
            "CATENTIO_LIMITED_RETRY": "50ms",
            "CATENTIO_LOG_FORMAT": "json",
            **env,
        }
        log = (tmp_path / f"worker-{len(started)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, str(threads)],
            env=full,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log.close()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for log in sorted(tmp_path.glob("worker-*.log")):
        lines = log.read_text().splitlines()
        # Everything but the routine line of each attempt, then the last lines.
        told = [line for line in lines if '"delivery.attempted"' not in line]
        print(log.name, f"{len(lines)} lines;", "\n".join([*told[-60:], *lines[-5:]]))


def test_racing_workers_and_repeated_rings_send_each_delivery_once(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    workers: Callable[..., subprocess.Popen[str]],
) -> None:
    """Two worker processes; 150 deliveries, every one rung four times (the fan-out's
    ring and three more, as lost-and-found messages would): the receiver sees each
    event once, and each delivery has one attempt."""
    runtime = make_runtime(postgres_url, redis_url=redis_server, redis_namespace=redis_namespace)
    add_endpoint(runtime, receiver=receiver, max_concurrency=40)
    publish_events(runtime, 150)
    rung: list[str] = []

    def dispatch(ids: Any) -> None:
        rung.extend(ids)
        for _ in range(4):
            runtime.bell.ring(list(ids))

    poller = runtime.poller()
    poller.dispatch = dispatch
    poller.poll_once()
    for _ in range(2):
        workers()
    done = wait_until(lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 150, timeout=60)
    assert done, _unfinished(runtime)
    time.sleep(0.5)  # anything sent twice would have arrived by now
    seen = Counter(r.headers["webhook-id"] for r in receiver.received())
    assert len(seen) == 150 and set(seen.values()) == {1}
    with runtime.sessions() as session:
        assert len(session.scalars(select(Attempt)).all()) == 150
        assert set(session.scalars(select(Delivery.attempt_count))) == {1}


def _unfinished(runtime: Runtime) -> Counter[tuple[str, str, str]]:
    """The deliveries not succeeded, by status, lease and hold (a failure's message)."""
    now = utcnow()
    with runtime.sessions() as session:
        rows = session.scalars(select(Delivery).where(Delivery.status != "succeeded")).all()
    return Counter(
        (
            str(row.status),
            "leased" if row.lease_until and row.lease_until > now else "unleased",
            f"held_by={row.held_by}, due at {row.next_attempt_at} (now {now})",
        )
        for row in rows
    )


def test_a_hanging_endpoint_holds_its_own_sockets_not_the_threads(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    backend: dict[str, Any],
) -> None:
    """One worker thread. An endpoint that never answers (limit 5) has five requests
    in flight for the whole 4 s deadline; meanwhile a healthy endpoint's 40 deliveries
    all go, at once, through the same single thread."""
    runtime = make_runtime(worker_threads=1, request_timeout=4.0, circuit_threshold=1000, **backend)
    hanging = add_hanging(add_endpoint, runtime, receiver, max_concurrency=5)
    healthy = add_endpoint(runtime, receiver=receiver, path="/ok", workspace_id="ws_ok")
    publish_events(runtime, 20, workspace="ws_hang")
    with runtime.running():
        assert wait_until(lambda: len(receiver.received("/hang")) >= 5, timeout=10)
        started = time.monotonic()
        publish_events(runtime, 40, workspace="ws_ok")
        assert wait_until(
            lambda: statuses(runtime, healthy.endpoint.id).count(DeliveryStatus.SUCCEEDED) == 40,
            timeout=10,
        )
        elapsed = time.monotonic() - started
        hung = len(receiver.received("/hang"))
        hanging_statuses = statuses(runtime, hanging.endpoint.id)
    assert elapsed < 3.0, f"healthy deliveries took {elapsed:.1f}s beside a hanging endpoint"
    assert hung == 5  # its budget of sockets, still waiting on the deadline
    assert hanging_statuses.count(DeliveryStatus.PENDING) == 20


def test_a_killed_worker_s_lease_outlives_its_deadline(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    workers: Callable[..., subprocess.Popen[str]],
) -> None:
    """A worker is killed (SIGKILL) while its request waits on the receiver. The lease it
    took ends after the attempt's deadline plus the margin; a second worker and the
    sweeper do not send the delivery again before then, and send it once after. The
    killed attempt was never recorded, so the one that succeeds is attempt 1."""
    timing = {
        "CATENTIO_REQUEST_TIMEOUT": "2s",
        "CATENTIO_CONNECT_TIMEOUT": "1s",
        "CATENTIO_LEASE_MARGIN": "1s",
    }
    runtime = make_runtime(
        postgres_url,
        redis_url=redis_server,
        redis_namespace=redis_namespace,
        request_timeout=2.0,
        lease_margin=timedelta(seconds=1),
        sweep_after=timedelta(milliseconds=200),
    )
    gate = Switch(200)
    gate.gate = threading.Event()
    add_endpoint(runtime, receiver=receiver, behaviour=gate)
    publish_events(runtime, 1)
    runtime.poller().poll_once()
    first = workers(threads=2, **timing)
    assert gate.arrived.wait(20)
    claimed_at = time.monotonic()
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    gate.gate.set()  # the receiver answers the dead connection; nobody records it
    with runtime.sessions() as session:
        row = session.scalars(select(Delivery)).one()
    assert row.lease_until is not None and row.updated_at is not None
    assert row.lease_until - row.updated_at >= timedelta(seconds=3)  # deadline + margin
    workers(threads=2, **timing)
    poller = runtime.poller()
    while time.monotonic() < claimed_at + 2.5:  # inside the lease: sweeps find nothing
        assert poller.sweep_once() == 0
        time.sleep(0.1)
    assert len(receiver.received()) == 1

    def delivered() -> bool:
        poller.sweep_once()
        return statuses(runtime) == [DeliveryStatus.SUCCEEDED]

    assert wait_until(delivered, timeout=20)
    assert len(receiver.received()) == 2  # at-least-once: the receiver saw it twice
    with runtime.sessions() as session:
        (attempt,) = session.scalars(select(Attempt)).all()
        assert attempt.number == 1
