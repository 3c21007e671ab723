"""The per-endpoint concurrency limit, enforced in the database across every worker
thread and process, and what it buys: a slow endpoint cannot take all the workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from outbox import Delivery, DeliveryStatus, publish
from tests.support.harness import Gauge, Harness, Switch, statuses
from tests.support.services import TEST_KEY, db_schema_of
from tests.support.waiting import wait_until
from worker.demo.receiver import Receiver, always
from worker.policy.admission import Hold
from worker.runtime import Runtime

FAST_RETRY = {"limited_retry": timedelta(milliseconds=30)}


def publish_events(runtime: Runtime, count: int, workspace: str = "ws_a") -> None:
    with runtime.sessions() as session, session.begin():
        for i in range(count):
            publish(session, workspace_id=workspace, type="run.succeeded", data={"i": i})


def test_a_delivery_over_the_limit_is_held_without_spending_an_attempt(harness: Harness) -> None:
    """With as many deliveries in flight as the limit allows, the next one is held
    (``concurrency``), its attempt count untouched, and goes once a slot frees."""
    switch = Switch(200)
    switch.gate = threading.Event()
    harness.endpoint(max_concurrency=1, behaviour=switch)
    first, second = harness.deliveries(2)
    sending = threading.Thread(target=harness.deliver, args=(first,))
    sending.start()
    assert switch.arrived.wait(5)
    result = harness.deliver(second)
    row = harness.delivery(second)
    assert (result.status, result.held_by) == ("postponed", Hold.CONCURRENCY)
    assert (row.attempt_count, row.held_by, row.lease_until) == (0, Hold.CONCURRENCY, None)
    switch.gate.set()
    sending.join(10)
    assert harness.due(second).status == DeliveryStatus.SUCCEEDED
    assert len(harness.receiver.received()) == 2


def test_a_dead_workers_slot_frees_when_its_lease_expires(harness: Harness) -> None:
    """A lease left by a worker that died counts against the limit only until it
    expires."""
    harness.endpoint(max_concurrency=1)
    stuck, waiting = harness.deliveries(2)
    lease_end = harness.clock.now + harness.runtime.settings.lease_duration
    with harness.runtime.sessions() as session, session.begin():
        session.execute(
            update(Delivery)
            .where(Delivery.id == stuck)
            .values(lease_until=lease_end, lease_token="gone-with-its-worker")
        )
    assert harness.deliver(waiting).held_by == Hold.CONCURRENCY
    harness.clock.now = lease_end
    assert harness.due(waiting).status == DeliveryStatus.SUCCEEDED


@pytest.mark.parametrize("where", ["endpoint", "settings"])
def test_worker_threads_never_exceed_the_endpoints_limit(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    database_url: str,
    where: str,
    captured_logs: list[dict[str, Any]],
) -> None:
    """Eight threads, one endpoint limited to 2 (its own limit, or the default from
    settings): the receiver never sees more than 2 at once, yet does see 2, and every
    delivery succeeds on its first attempt."""
    overrides: dict[str, Any] = {**FAST_RETRY, "worker_threads": 8}
    endpoint_options: dict[str, Any] = {}
    if where == "settings":
        overrides["max_concurrency"] = 2
    else:
        endpoint_options["max_concurrency"] = 2
    runtime = make_runtime(database_url, **overrides)
    gauge = Gauge(hold=0.15)
    add_endpoint(runtime, receiver=receiver, behaviour=gauge, **endpoint_options)
    publish_events(runtime, 12)
    with runtime.running():
        assert wait_until(lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 12)
    assert gauge.peak == 2
    assert gauge.total == 12
    held = [e for e in captured_logs if e["event"] == "delivery.held"]
    assert held and {e["held_by"] for e in held} == {Hold.CONCURRENCY}
    with runtime.sessions() as session:
        counts = set(session.scalars(select(Delivery.attempt_count)))
    assert counts == {1}


def test_a_slow_endpoint_cannot_starve_a_healthy_one(
    make_runtime: Callable[..., Runtime], add_endpoint: Any, receiver: Receiver, sqlite_url: str
) -> None:
    """One endpoint takes the full deadline on every request; with its limit of 2, the
    other 2 of 4 worker threads keep a healthy endpoint's deliveries flowing: all 20
    succeed while the slow endpoint has had at most two rounds of 2 requests. (Without
    the limit the slow backlog would hold all 4 threads for ~9 s.) How fast the healthy
    endpoint goes beside hanging ones is a benchmark's figure (tests/bench, "hanging"),
    not a timed assertion here."""
    runtime = make_runtime(
        sqlite_url,
        request_timeout=1.5,
        worker_threads=4,
        max_concurrency=2,
        circuit_threshold=1000,  # the limit alone, not the circuit breaker, is on trial
        **FAST_RETRY,
    )
    slow = add_endpoint(
        runtime,
        receiver=receiver,
        path="/slow",
        workspace_id="ws_slow",
        behaviour=always(200, delay=3.0),
    )
    healthy = add_endpoint(runtime, receiver=receiver, path="/healthy", workspace_id="ws_ok")
    publish_events(runtime, 24, workspace="ws_slow")
    with runtime.running():
        assert wait_until(lambda: len(receiver.received("/slow")) >= 2, timeout=5)
        publish_events(runtime, 20, workspace="ws_ok")
        assert wait_until(
            lambda: statuses(runtime, healthy.endpoint.id).count(DeliveryStatus.SUCCEEDED) == 20,
            timeout=10,
        )
        slow_statuses = statuses(runtime, slow.endpoint.id)
        in_flight = len(receiver.received("/slow"))
    assert slow_statuses.count(DeliveryStatus.PENDING) >= 20  # the slow backlog still waits
    assert in_flight <= 4  # two at a time, at most two rounds of the 1.5 s deadline


WORKER_SCRIPT = """
import sys
from worker.cli import main
sys.exit(main(["worker", "--threads", "4"]))
"""


@pytest.mark.slow
def test_the_limit_holds_across_two_worker_processes_on_redis(
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
) -> None:
    """Two worker processes (4 threads each) on PostgreSQL + Redis, one endpoint limited
    to 3: the receiver never sees more than 3 at once, and both processes deliver."""
    runtime = make_runtime(
        postgres_url, redis_url=redis_server, redis_namespace=redis_namespace, **FAST_RETRY
    )
    gauge = Gauge(hold=0.25)
    add_endpoint(runtime, receiver=receiver, behaviour=gauge, max_concurrency=3)
    env = {
        **os.environ,
        "DATABASE_URL": postgres_url,
        "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url),
        "REDIS_URL": redis_server,
        "CATENTIO_REDIS_NAMESPACE": redis_namespace,
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CATENTIO_LIMITED_RETRY": "30ms",
        "CATENTIO_REQUEST_TIMEOUT": "5s",
        "CATENTIO_LOG_FORMAT": "json",
        "CATENTIO_LOG_LEVEL": "INFO",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        publish_events(runtime, 24)
        runtime.poller().poll_once()
        delivered = wait_until(
            lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 24, timeout=40
        )
    finally:
        outputs = []
        for process in workers:
            process.terminate()
            outputs.append(process.communicate(timeout=30)[1])
    assert delivered, outputs
    per_process = [
        sum(
            1
            for line in output.splitlines()
            if line.startswith("{") and json.loads(line).get("event") == "delivery.attempted"
        )
        for output in outputs
    ]
    assert gauge.peak == 3
    assert gauge.total == 24
    assert sum(per_process) == 24 and min(per_process) > 0, per_process
