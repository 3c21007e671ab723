"""The CPU cost of metrics on the delivery path: worker CPU per delivery with metrics
on ÷ off, measured side by side in one run.

    CATENTIO_BENCH=1 python -m pytest tests/bench/test_metrics_cost.py -s

Two ``worker`` processes run at once on PostgreSQL + Redis, identical but for
``CATENTIO_METRICS_PORT`` (one off, one on) and the queue each consumes. Rounds
alternate between them (off, on, then on, off, …) so the machine's drift hits both;
each round fans out the same 1,000 events to the one worker's queue and counts that
worker's CPU time (user + system, from ``/proc/<pid>/stat``) until every delivery is
recorded as succeeded. Nothing scrapes the metered worker during a round; the cost of
one scrape (which runs the state-gauge queries) is measured after the rounds, apart.

A second, in-process measurement times just the metric calls a delivery makes, beside
the no-op default: the part of the difference that the end-to-end rounds cannot resolve
through a shared machine's noise.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from outbox import Delivery, DeliveryStatus, Event, publish
from tests.support.services import TEST_KEY
from worker.logs import configure_logging

EVENTS = 1000
ROUNDS = 4
THREADS = 8
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        raw = handle.read()
    fields = raw[raw.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def succeeded(runtime: Any) -> int:
    with runtime.sessions() as session:
        count = session.scalar(
            select(func.count()).where(Delivery.status == DeliveryStatus.SUCCEEDED)
        )
    return int(count or 0)


def reset(runtime: Any) -> None:
    with runtime.sessions() as session, session.begin():
        session.execute(Delivery.__table__.delete())
        session.execute(update(Event).values(dispatched_at=None))


@pytest.mark.bench
@pytest.mark.timeout(3600)
def test_worker_cpu_per_delivery_metrics_on_versus_off(
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Any,
    capsys: Any,
) -> None:
    """Measure; assert only that every round delivered everything."""
    configure_logging(level="WARNING")
    common = {
        "redis_url": redis_server,
        "redis_namespace": redis_namespace,
        "poll_batch_size": 500,
        "log_level": "WARNING",
    }
    fanout = {
        variant: make_runtime(postgres_url, queue_name=f"bench-{variant}", **common)
        for variant in ("off", "on")
    }
    runtime = fanout["off"]
    add_endpoint(runtime, receiver=receiver, path="/hook", max_concurrency=2 * THREADS)
    with runtime.sessions() as session, session.begin():
        for i in range(EVENTS):
            publish(
                session, workspace_id="ws_a", type="run.succeeded", data={"i": i, "pad": "x" * 200}
            )

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_server,
        "CATENTIO_REDIS_NAMESPACE": redis_namespace,
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CATENTIO_LOG_LEVEL": "WARNING",
        "CATENTIO_LOG_FORMAT": "json",
    }
    metrics_port = 19000 + os.getpid() % 1000
    workers = {
        "off": {**env, "CATENTIO_QUEUE": "bench-off"},
        "on": {**env, "CATENTIO_QUEUE": "bench-on", "CATENTIO_METRICS_PORT": str(metrics_port)},
    }
    processes = {
        variant: subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "--threads", str(THREADS)],
            env=worker_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for variant, worker_env in workers.items()
    }
    per_delivery: dict[str, list[float]] = {"off": [], "on": []}
    wall: dict[str, list[float]] = {"off": [], "on": []}
    try:
        time.sleep(5)  # both up and idle before the first round
        for round_number in range(ROUNDS):
            order = ("off", "on") if round_number % 2 == 0 else ("on", "off")
            for variant in order:
                reset(runtime)
                pid = processes[variant].pid
                cpu_before, started = cpu_seconds(pid), time.perf_counter()
                while fanout[variant].poller().poll_once().events:
                    pass
                deadline = time.monotonic() + 300
                while succeeded(runtime) < EVENTS:
                    assert time.monotonic() < deadline, f"{variant}: not all delivered"
                    time.sleep(0.02)
                wall[variant].append(time.perf_counter() - started)
                per_delivery[variant].append((cpu_seconds(pid) - cpu_before) / EVENTS)
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        ok = 'catentio_webhooks_attempts_total{outcome="succeeded",status_class="2xx"}'
        counted = next(line for line in scraped.splitlines() if line.startswith(ok))
        assert float(counted.split()[-1]) == EVENTS * ROUNDS  # every "on" round counted
        pid = processes["on"].pid
        cpu_before = cpu_seconds(pid)
        for _ in range(50):
            httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
            time.sleep(2.1)  # past the state gauges' cache: every scrape queries
        scrape_cpu = (cpu_seconds(pid) - cpu_before) / 50
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            process.wait(60)

    off, on = statistics.median(per_delivery["off"]), statistics.median(per_delivery["on"])
    pairs = [b / a for a, b in zip(per_delivery["off"], per_delivery["on"], strict=True)]
    with capsys.disabled():
        print(
            f"\nworker CPU per delivery, {ROUNDS} rounds of {EVENTS} deliveries, {THREADS} threads"
        )
        for variant in ("off", "on"):
            ms = ", ".join(f"{v * 1000:.2f}" for v in per_delivery[variant])
            secs = ", ".join(f"{w:.1f}" for w in wall[variant])
            print(f"  metrics {variant:<3}: {ms} ms/delivery (wall {secs} s)")
        rounds = ", ".join(f"{p:.3f}" for p in pairs)
        print(f"  median on ÷ off: {on / off:.3f}  (per round: {rounds})")
        print(f"  one scrape of /metrics (state gauges queried): {scrape_cpu * 1000:.1f} ms CPU")


@pytest.mark.bench
def test_metric_calls_per_delivery_in_process(capsys: Any) -> None:
    """The calls a delivery makes (one attempt_finished, one first_attempt_latency), timed
    in CPU seconds beside the no-op default, interleaved in 10 rounds: the cost the
    end-to-end figure above cannot resolve through the machine's noise."""
    from prometheus_client import CollectorRegistry

    from worker.telemetry.metrics import NO_METRICS, Metrics, PrometheusMetrics

    calls = 100_000
    variants: dict[str, Metrics] = {
        "off": NO_METRICS,
        "on": PrometheusMetrics(CollectorRegistry()),
    }
    spent: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(10):
        for name, metrics in variants.items():
            started = time.process_time()
            for _ in range(calls):
                metrics.attempt_finished("succeeded", "2xx", 0.012, endpoint_id="ep_1")
                metrics.first_attempt_latency(0.05)
            spent[name].append((time.process_time() - started) / calls)
    off, on = statistics.median(spent["off"]), statistics.median(spent["on"])
    with capsys.disabled():
        print(
            f"\nmetric calls per delivery: {on * 1e6:.2f} µs with Prometheus, "
            f"{off * 1e6:.2f} µs with the no-op; difference {(on - off) * 1e6:.2f} µs"
        )
    assert on > off
