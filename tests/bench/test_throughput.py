"""End-to-end throughput on PostgreSQL + Redis, beside plain httpx loops, in one run.

    CATENTIO_BENCH=1 python -m pytest tests/bench/test_throughput.py -s

2,000 events to one local endpoint. Reported side by side, since these machines are
shared and noisy:

* ours, in one process: poller and 8 dramatiq worker threads on Redis (``run``);
* ours, as deployed: a ``poller`` process and two ``worker`` processes of 8 threads,
  measured once they are up;
* a plain httpx client POSTing the same bodies in a loop, on 1 and on 8 threads.

Ours is measured from the producer's commit to the last delivery recorded as succeeded;
every delivery is two short transactions (claim, record) plus the POST. The receiver is
the same loopback server for all of them, in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from outbox import Delivery, DeliveryStatus, Event, publish
from tests.support.services import TEST_KEY
from worker.logs import configure_logging

EVENTS = 2000
THREADS = 8
STARTUP = 5.0  # seconds the processes get to start before the outbox is refilled


def plain_loop(url: str, bodies: list[bytes], threads: int) -> float:
    """Seconds for ``threads`` httpx clients to POST every body once."""
    chunks = [bodies[i::threads] for i in range(threads)]

    def post_all(chunk: list[bytes]) -> None:
        with httpx.Client() as client:
            for body in chunk:
                client.post(url, content=body, headers={"content-type": "application/json"})

    started = time.perf_counter()
    workers = [threading.Thread(target=post_all, args=(c,)) for c in chunks]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def wait_for_all(runtime: Any, expected: int, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with runtime.sessions() as session:
            done = session.scalar(
                select(func.count()).where(Delivery.status == DeliveryStatus.SUCCEEDED)
            )
        if done >= expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"only {done} of {expected} deliveries succeeded in {timeout}s")


def republish(runtime: Any) -> None:
    """Put the same events back in the outbox for the next run."""
    with runtime.sessions() as session, session.begin():
        session.execute(Delivery.__table__.delete())
        session.execute(update(Event).values(dispatched_at=None))


@pytest.mark.bench
def test_end_to_end_throughput_against_plain_httpx(
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Any,
    capsys: Any,
) -> None:
    """Measure; assert only that every delivery arrived, once per run."""
    settings = {
        "redis_url": redis_server,
        "redis_namespace": redis_namespace,
        "worker_threads": THREADS,
        "poll_batch_size": 500,
        "log_level": "WARNING",
    }
    configure_logging(level="WARNING")  # as the CLI would; an INFO line per attempt costs
    runtime = make_runtime(postgres_url, **settings)
    add_endpoint(runtime, receiver=receiver, path="/ours", max_concurrency=2 * THREADS)
    plain_url = receiver.route("/plain")
    with runtime.sessions() as session, session.begin():
        events = [
            publish(
                session, workspace_id="ws_a", type="run.succeeded", data={"i": i, "pad": "x" * 200}
            )
            for i in range(EVENTS)
        ]
    bodies = [e.body.encode() for e in events]

    sequential = plain_loop(plain_url, bodies, 1)
    threaded = plain_loop(plain_url, bodies, THREADS)

    started = time.perf_counter()
    with runtime.running(threads=THREADS):
        wait_for_all(runtime, EVENTS)
    in_process = time.perf_counter() - started
    assert len({r.headers["webhook-id"] for r in receiver.received("/ours")}) == EVENTS

    env = {
        **os.environ,
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_server,
        "CATENTIO_REDIS_NAMESPACE": redis_namespace,
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CATENTIO_POLL_BATCH_SIZE": "500",
        "CATENTIO_POLL_INTERVAL": "50ms",
        "CATENTIO_LOG_LEVEL": "WARNING",
    }
    commands = [["poller"]] + [["worker", "--threads", str(THREADS)]] * 2
    processes = [subprocess.Popen([sys.executable, "-m", "worker", *c], env=env) for c in commands]
    try:
        time.sleep(STARTUP)  # measure the steady state, not Python start-up
        republish(runtime)
        started = time.perf_counter()
        wait_for_all(runtime, EVENTS)
        deployed = time.perf_counter() - started
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
    assert len(receiver.received("/ours")) == 2 * EVENTS

    with capsys.disabled():
        print(
            f"\n{EVENTS} events, one loopback endpoint, PostgreSQL + Redis\n"
            f"  plain httpx loop, 1 thread:            {EVENTS / sequential:7.0f} posts/s\n"
            f"  plain httpx loop, {THREADS} threads:          {EVENTS / threaded:7.0f} posts/s\n"
            f"  ours, one process ({THREADS} threads):      {EVENTS / in_process:7.0f} deliveries/s"
            f"  = {sequential / in_process:.3f} x the 1-thread loop\n"
            f"  ours, poller + 2 worker processes: {EVENTS / deployed:7.0f} deliveries/s"
            f"  = {sequential / deployed:.3f} x the 1-thread loop"
        )
