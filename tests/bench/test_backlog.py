"""Draining a backlog: per-event drain time and worker memory of a large backlog ÷ a
small one, and the sweeper's re-rings meanwhile (issue 10, target 6 and directions).

    CATENTIO_BENCH=1 python -m pytest tests/bench -k backlog
    CATENTIO_BENCH=1 CATENTIO_BENCH_BACKLOG_SMALL=10000 CATENTIO_BENCH_BACKLOG_LARGE=100000 \\
        python -m pytest tests/bench -k backlog

Two fresh deployments (poller + workers on PostgreSQL + Redis), one per size
(``CATENTIO_BENCH_BACKLOG_SMALL`` 1,000 and ``_LARGE`` 4,000 by default; today's engine
drains about 50 a second). Each backlog is published in one commit to one endpoint.
Every second the benchmark samples the broker's stored messages and each process's RSS;
at the end it reads each process's peak RSS (``VmHWM``) and sums the ``deliveries`` of
the poller's ``outbox.swept`` log lines written during the window (re-rings). With the
product's default ``CATENTIO_SWEEP_AFTER`` (30 s), a backlog that drains in less than
that shows no re-rings at all: the large size should take longer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests.bench import procstat
from tests.bench.config import BenchConfig
from tests.bench.deployment import Deployment, Group
from tests.bench.drain import Drain, add_warm_up_endpoint, drain, warm_up
from tests.bench.results import MIB, MS, Results, record_usage

pytestmark = [pytest.mark.bench, pytest.mark.timeout(7200)]


def re_rings(deployment: Deployment, since: float) -> int:
    """Deliveries the poller's sweeper rang again after ``since`` (epoch seconds)."""
    total = 0
    for record in deployment.process("poller").log_records():
        if record.get("event") != "outbox.swept":
            continue
        stamp = datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))
        if stamp.timestamp() >= since:
            total += int(record.get("deliveries", 0))
    return total


def test_backlog_drain(
    make_deployment: Callable[..., Deployment],
    bench_config: BenchConfig,
    bench_results: Results,
) -> None:
    """Measure; assert that every delivery arrived."""
    results = bench_results
    measured: dict[int, tuple[Drain, dict[str, int], int]] = {}
    connections = bench_config.workers * bench_config.threads
    for size in (bench_config.backlog_small, bench_config.backlog_large):
        with make_deployment("distributed") as deployment:
            deployment.add_endpoint(
                workspace="ws_backlog",
                path=f"/ok/backlog-{deployment.tag}",
                max_concurrency=connections,
            )
            add_warm_up_endpoint(deployment)
            deployment.start()
            warm_up(deployment, timeout=bench_config.timeout)

            def sample(d: Deployment = deployment) -> dict[str, Any]:
                rss = {}
                for process in d.processes:
                    reading = procstat.read(process.popen.pid)
                    rss[process.name] = reading.rss_bytes if reading else 0
                return {"broker_messages": d.broker_messages(), "rss": rss}

            window = drain(
                deployment,
                [Group("ws_backlog", size)],
                workspace="ws_backlog",
                expect=size,
                timeout=bench_config.timeout,
                sample=sample,
            )
            peak = deployment.peak_rss()
            rung = re_rings(deployment, window.published.committed_at)
        assert window.finished, f"only {window.delivered} of {size} delivered"
        measured[size] = (window, peak, rung)
        scenario = f"backlog {size}"
        results.add(scenario, "drain time per event", window.seconds / size * MS, "ms")
        results.add(scenario, "deliveries/s", window.rate, "1/s")
        results.add(scenario, "sweeper re-rings", rung)
        messages = [s["broker_messages"] for s in window.samples if s["broker_messages"]]
        if messages:
            results.add(scenario, "broker messages stored, peak", max(messages))
        workers = [v for name, v in peak.items() if name.startswith("worker")]
        results.add(scenario, "worker peak RSS (max of workers)", max(workers) / MIB, "MiB")
        results.add(scenario, "poller peak RSS", peak.get("poller", 0) / MIB, "MiB")
        record_usage(results, scenario, window.usage, window.delivered)
        results.detail(scenario, "samples", window.samples)

    small, large = bench_config.backlog_small, bench_config.backlog_large
    (w_small, peak_small, _), (w_large, peak_large, _) = measured[small], measured[large]
    scenario = f"backlog {large} ÷ {small}"
    results.add(
        scenario,
        "drain time per event",
        w_large.seconds / large * MS,
        "ms",
        ratio=(w_large.seconds / large) / (w_small.seconds / small),
        versus=f"backlog {small}",
    )
    worker_small = max(v for n, v in peak_small.items() if n.startswith("worker"))
    worker_large = max(v for n, v in peak_large.items() if n.startswith("worker"))
    results.add(
        scenario,
        "worker peak RSS",
        worker_large / MIB,
        "MiB",
        ratio=worker_large / worker_small,
        versus=f"backlog {small}",
    )
