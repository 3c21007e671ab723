"""End-to-end throughput on PostgreSQL + Redis, beside plain httpx loops, in one run.

    CATENTIO_BENCH=1 python -m pytest tests/bench/test_throughput.py -s

2,000 events to one local endpoint. Reported side by side, since these machines are
shared and noisy: our deliveries per second (publish commit → every delivery recorded as
succeeded, poller + dramatiq worker threads on Redis, PostgreSQL as the truth) against
(a) one httpx client posting the same bodies in a loop and (b) the same loop spread over
as many threads as the worker has. The receiver is the same loopback server for all.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from outbox import Delivery, DeliveryStatus, Event, publish

EVENTS = 2000
THREADS = 8


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
    """Measure; assert only that every delivery arrived exactly once."""
    runtime = make_runtime(
        postgres_url,
        redis_url=redis_server,
        redis_namespace=redis_namespace,
        worker_threads=THREADS,
        poll_batch_size=500,
        log_level="WARNING",
    )
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    add_endpoint(runtime, receiver=receiver, path="/ours")
    plain_url = receiver.route("/plain")

    with runtime.sessions() as session, session.begin():
        events = [
            publish(
                session, workspace_id="ws_a", type="run.succeeded", data={"i": i, "pad": "x" * 200}
            )
            for i in range(EVENTS)
        ]
    bodies = [e.body.encode() for e in events]
    with runtime.sessions() as session, session.begin():
        session.execute(Event.__table__.update().values(dispatched_at=None))

    sequential = plain_loop(plain_url, bodies, 1)
    threaded = plain_loop(plain_url, bodies, THREADS)

    def succeeded() -> int:
        with runtime.sessions() as session:
            return int(
                session.scalar(
                    select(func.count()).where(Delivery.status == DeliveryStatus.SUCCEEDED)
                )
                or 0
            )

    started = time.perf_counter()
    with runtime.running(threads=THREADS):
        while succeeded() < EVENTS:
            time.sleep(0.05)
    ours = time.perf_counter() - started

    assert len(receiver.received("/ours")) == EVENTS
    assert len({r.headers["webhook-id"] for r in receiver.received("/ours")}) == EVENTS
    with capsys.disabled():
        print(
            f"\n{EVENTS} events, one loopback endpoint, {THREADS} threads\n"
            f"  catentio (PostgreSQL + Redis, end to end): {EVENTS / ours:8.0f} deliveries/s\n"
            f"  plain httpx loop, 1 thread:                {EVENTS / sequential:8.0f} posts/s"
            f"  (ours = {sequential / ours:.2f}x)\n"
            f"  plain httpx loop, {THREADS} threads:              {EVENTS / threaded:8.0f} posts/s"
            f"  (ours = {threaded / ours:.2f}x)"
        )
