"""Commit to first attempt at 50 events/s, polling alone and with LISTEN/NOTIFY, in one run.

    CATENTIO_BENCH=1 python -m pytest tests/bench/test_wakeup_latency.py -s

As deployed: a ``poller`` process and a ``worker`` process (8 threads) on PostgreSQL +
Redis, with the default poll interval (0.5 s); this process is the producer (an engine of
its own, committing one event at a time at a steady rate for ``SECONDS`` seconds) and the
receiver. Two rates: 50 events/s, and 10, which a loaded shared host keeps up with (when
the worker falls behind, its queue, not the poller, decides the first attempt's time).
For each event: commit -> fan-out (the delivery row's ``created_at``, which is when the
poller found the event) and commit -> first attempt (the attempt's ``started_at``), both
minus the wall time right after the producer's commit. The two modes run back to back in
one run, so their ratio means something on a noisy shared host; CPU time is the poller's
and the worker's, from /proc, per event.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from outbox import Attempt, Delivery, publish
from outbox.database import make_session_factory
from tests.support.services import TEST_KEY, db_schema_of, engine_for

RATES = (50, 10)  # events per second: the rate, and one a loaded host keeps up with
SECONDS = 10
THREADS = 8
STARTUP = 5.0  # seconds the processes get before the producer starts


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def produce(url: str, rate: int, seconds: int) -> dict[str, float]:
    """Publish ``rate`` events a second; return each event's commit time (epoch seconds)."""
    engine = engine_for(url)
    sessions = make_session_factory(engine)
    committed: dict[str, float] = {}
    start = time.monotonic()
    for i in range(rate * seconds):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        with sessions() as session, session.begin():
            event = publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i})
        committed[event.id] = time.time()
    engine.dispose()
    return committed


def timings(
    url: str, events: set[str], timeout: float = 120
) -> dict[str, tuple[datetime, datetime]]:
    """Each event's (fan-out, first attempt start), once all ``events`` have both."""
    engine = engine_for(url)
    query = (
        select(Delivery.event_id, Delivery.created_at, Attempt.started_at)
        .join(Attempt, Attempt.delivery_id == Delivery.id)
        .where(Attempt.number == 1, Delivery.event_id.in_(events))
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            with make_session_factory(engine)() as session:
                rows = {
                    event: (fanned, started) for event, fanned, started in session.execute(query)
                }
            if len(rows) >= len(events) or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)
    finally:
        engine.dispose()


def run_mode(env: dict[str, str], url: str, listen: bool, rate: int) -> dict[str, Any]:
    """Start poller + worker, produce, collect latencies (ms) and CPU ms per event."""
    env = {**env, "CATENTIO_LISTEN": "true" if listen else "false"}
    commands = [["poller"], ["worker", "--threads", str(THREADS)]]
    processes = [subprocess.Popen([sys.executable, "-m", "worker", *c], env=env) for c in commands]
    try:
        time.sleep(STARTUP)
        cpu_before = sum(cpu_seconds(p.pid) for p in processes)
        committed = produce(url, rate, SECONDS)
        seen = timings(url, set(committed))
        cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu_before
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
    assert len(seen) == len(committed), "every event got its first attempt"
    fanout, first = [], []
    for event_id, at in committed.items():
        fanned, started = seen[event_id]
        fanout.append((fanned.astimezone(UTC).timestamp() - at) * 1000)
        first.append((started.astimezone(UTC).timestamp() - at) * 1000)
    return {"fanout": fanout, "first": first, "cpu": cpu * 1000 / len(committed)}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@pytest.mark.bench
@pytest.mark.timeout(900)
@pytest.mark.parametrize("rate", RATES)
def test_commit_to_first_attempt_latency_with_and_without_listen(
    rate: int,
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Any,
    capsys: Any,
) -> None:
    """Measure; assert only that every event got its first attempt in both modes."""
    runtime = make_runtime(postgres_url)  # migrates, and registers the endpoint
    add_endpoint(runtime, receiver=receiver)
    env = {
        **os.environ,
        "DATABASE_URL": postgres_url,
        "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url),
        "REDIS_URL": redis_server,
        "CATENTIO_REDIS_NAMESPACE": redis_namespace,
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CATENTIO_LOG_LEVEL": "WARNING",
    }
    results = {
        "polling only (before)": run_mode(env, postgres_url, listen=False, rate=rate),
        "LISTEN/NOTIFY (after)": run_mode(env, postgres_url, listen=True, rate=rate),
    }
    load = os.getloadavg()[0]
    with capsys.disabled():
        print(
            f"\n{rate} events/s for {SECONDS} s, poller + worker processes, PostgreSQL + Redis, "
            f"poll interval 0.5 s (load average {load:.1f} on {os.cpu_count()} CPUs)"
        )
        for mode, result in results.items():
            for key, label in (("fanout", "commit->fan-out"), ("first", "commit->1st attempt")):
                values = result[key]
                print(
                    f"  {mode:22s} {label:20s} p50 {statistics.median(values):7.1f} ms"
                    f"   p99 {percentile(values, 0.99):7.1f} ms"
                )
            print(f"  {mode:22s} CPU (poller + worker)  {result['cpu']:5.2f} ms/event")
        before, after = results.values()
        for key in ("fanout", "first"):
            ratio = statistics.median(before[key]) / statistics.median(after[key])
            print(f"  p50 ratio before/after, {key}: {ratio:.1f} x")
