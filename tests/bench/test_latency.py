"""Commit → receipt at a steady rate, and what the poller costs at that rate (issue 10,
target 3; issue 11 item 4: commit → first attempt).

    CATENTIO_BENCH=1 python -m pytest tests/bench -k latency
    CATENTIO_BENCH=1 CATENTIO_BENCH_RATE=50 CATENTIO_BENCH_LATENCY_SECONDS=60 \\
        python -m pytest tests/bench -k 'latency and distributed'

The benchmark publishes one event per transaction, ``CATENTIO_BENCH_RATE`` (50) a second
for ``CATENTIO_BENCH_LATENCY_SECONDS`` (30), and notes the wall clock right after each
COMMIT; the receiver notes the wall clock when the request has arrived (same machine,
same clock). From the database: fan-out (the delivery row's ``created_at``) → first
attempt's start, and commit → first attempt's start. ``kept up``: the last event arrived
within a second of its commit. The product runs with its default poll interval unless
``CATENTIO_BENCH_ENV`` says otherwise (e.g. ``CATENTIO_POLL_INTERVAL=30s`` to show that
only a wake-up on commit can explain a low latency).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytest

from tests.bench.config import BenchConfig
from tests.bench.deployment import Deployment
from tests.bench.drain import add_warm_up_endpoint, warm_up
from tests.bench.results import MS, Results, record_usage
from tests.bench.usage import Usage

pytestmark = [pytest.mark.bench, pytest.mark.timeout(7200)]

DRAIN_GRACE = 120.0
"""Seconds after the last commit that stragglers may take before they count as lost."""


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1) of ``values``."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def record_latencies(results: Results, scenario: str, name: str, seconds: list[float]) -> None:
    for label, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
        value = percentile(seconds, q)
        results.add(scenario, f"{name} {label}", None if value is None else value * MS, "ms")


@pytest.mark.parametrize("kind", ["distributed", "embedded"])
def test_latency_at_steady_rate(
    kind: str,
    make_deployment: Callable[..., Deployment],
    bench_config: BenchConfig,
    bench_results: Results,
) -> None:
    """Measure; assert only that every event arrived."""
    scenario = f"latency {kind} at {bench_config.rate:g}/s"
    connections = (
        bench_config.workers * bench_config.threads
        if kind == "distributed"
        else bench_config.embedded_threads
    )
    with make_deployment(kind) as deployment:
        path = f"/ok/latency-{deployment.tag}"
        deployment.add_endpoint(workspace="ws_latency", path=path, max_concurrency=connections)
        add_warm_up_endpoint(deployment)
        deployment.start()
        warm_up(deployment, timeout=bench_config.timeout)

        start = deployment.snapshot()
        committed = deployment.publish_paced(
            "ws_latency", rate=bench_config.rate, seconds=bench_config.latency_seconds
        )
        last_commit = max(committed.values())
        done = deployment.wait_for(
            len(committed), workspace="ws_latency", timeout=DRAIN_GRACE, since=last_commit
        )
        end = deployment.snapshot()
        arrivals = deployment.receiver.arrivals().get(path, [])
        first_attempts = deployment.first_attempts("ws_latency")

    received: dict[str, float] = {}
    for at, webhook_id in arrivals:
        received.setdefault(webhook_id, at)
    to_receipt = [received[e] - t for e, t in committed.items() if e in received]
    to_attempt = [started - committed[e] for e, _, started in first_attempts if e in committed]
    fanout_to_attempt = [started - created for _, created, started in first_attempts]
    last = max(committed, key=lambda e: committed[e])
    kept_up = last in received and received[last] - committed[last] < 1.0

    results = bench_results
    results.add(scenario, "events published", len(committed))
    achieved = (len(committed) - 1) / (last_commit - min(committed.values()))
    results.add(scenario, "published per second (achieved)", achieved, "1/s")
    results.add(scenario, "events not received", len(committed) - len(to_receipt))
    results.add(scenario, "kept up (last event < 1 s)", 1.0 if kept_up else 0.0)
    record_latencies(results, scenario, "commit → receipt", to_receipt)
    record_latencies(results, scenario, "commit → first attempt start", to_attempt)
    record_latencies(results, scenario, "fan-out → first attempt start", fanout_to_attempt)
    usage = Usage.between(start, end)
    record_usage(results, scenario, usage, len(to_receipt))
    results.detail(scenario, "drained_at", done)
    results.detail(scenario, "measured_at", time.time())
    assert done is not None, f"{len(committed) - len(to_receipt)} events were not delivered"
