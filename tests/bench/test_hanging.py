"""A healthy endpoint's throughput beside endpoints that accept and never answer, ÷ its
throughput alone (issue 10, target 4).

    CATENTIO_BENCH=1 python -m pytest tests/bench -k hanging
    CATENTIO_BENCH=1 CATENTIO_BENCH_HANG_ENDPOINTS=1,10,100 python -m pytest tests/bench -k hanging
    CATENTIO_BENCH=1 CATENTIO_BENCH_PYSPY=5 python -m pytest tests/bench -k hanging  # profiled

Three deployments in a row, each fresh (poller + workers on PostgreSQL + Redis): the
healthy endpoint alone, then beside 1 and beside 100 hanging endpoints
(``CATENTIO_BENCH_HANG_ENDPOINTS``). The hanging endpoints are in the same workspace and
subscribe to their own event type; in the same commit as the healthy backlog
(``CATENTIO_BENCH_HANG_EVENTS``, 1000 events) each is sent ``CATENTIO_BENCH_HANG_BACKLOG``
(20) events — twice its default concurrency limit, so each one can hold its whole budget
for the attempt deadline (15 s) and has retries waiting for the rest of the window. The
healthy endpoint's limit is the number of worker threads, as in the throughput scenario.
A window is capped at ``CATENTIO_BENCH_HANG_WINDOW`` seconds (90); a capped window reports
the rate of what got through.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.bench.config import BenchConfig
from tests.bench.deployment import Deployment, Group
from tests.bench.drain import add_warm_up_endpoint, drain, warm_up
from tests.bench.profile import Sampler, profile_text
from tests.bench.receiver import ReceiverProcess
from tests.bench.results import Results, record_usage

pytestmark = [pytest.mark.bench, pytest.mark.timeout(7200)]


def test_healthy_beside_hanging(
    make_deployment: Callable[..., Deployment],
    bench_config: BenchConfig,
    bench_results: Results,
    bench_receiver: ReceiverProcess,
) -> None:
    """Measure; assert that the healthy endpoint's deliveries arrived when alone."""
    results = bench_results
    connections = bench_config.workers * bench_config.threads
    alone: float | None = None
    for hanging in [0, *bench_config.hanging_counts]:
        scenario = "hanging: healthy alone" if hanging == 0 else f"hanging: beside {hanging}"
        with make_deployment("distributed") as deployment:
            deployment.add_endpoint(
                workspace="ws_hang",
                path=f"/ok/healthy-{deployment.tag}",
                events=("bench.ok",),
                max_concurrency=connections,
            )
            groups = [Group("ws_hang", bench_config.hang_events, "bench.ok")]
            if hanging:
                path = f"/hang/{deployment.tag}"
                first = deployment.add_endpoint(
                    workspace="ws_hang", path=path, events=("bench.hang",)
                )
                deployment.copy_endpoint(first, hanging - 1, path)
                groups.insert(0, Group("ws_hang", bench_config.hang_backlog, "bench.hang"))
            add_warm_up_endpoint(deployment)
            deployment.start()
            warm_up(deployment, timeout=bench_config.timeout)
            sampler = None
            if bench_config.pyspy > 0:
                assert Sampler.available(), "CATENTIO_BENCH_PYSPY needs py-spy"
                target = deployment.processes[-1]  # the last worker
                sampler = Sampler(
                    target.popen.pid, bench_config.pyspy, deployment.workdir / "pyspy.txt"
                )
            window = drain(
                deployment,
                groups,
                workspace="ws_hang",
                expect=bench_config.hang_events,
                timeout=bench_config.hang_window,
                sample=lambda: {"hung": bench_receiver.stats()["hung"]},
                on_commit=sampler.start if sampler is not None else None,
            )
            profile = sampler.finish() if sampler is not None else None
            if profile is not None:
                results.detail(scenario, "pyspy", profile.__dict__)
                results.note(profile_text(scenario, deployment.processes[-1].name, profile))
        if hanging == 0:
            assert window.finished, f"alone, only {window.delivered} delivered"
            alone = window.rate
        results.add(
            scenario,
            "healthy deliveries/s",
            window.rate,
            "1/s",
            ratio=None if hanging == 0 or not alone else window.rate / alone,
            versus="" if hanging == 0 else "healthy alone",
        )
        capped = 0.0 if window.finished else 1.0
        results.add(scenario, "window capped (1 = not all delivered)", capped)
        if window.samples:
            peak = max(s["hung"] for s in window.samples)
            results.add(scenario, "requests hung at the receiver, peak", peak)
        results.add(scenario, "healthy deliveries", window.delivered)
        record_usage(results, scenario, window.usage, window.delivered)
        results.detail(scenario, "samples", window.samples)
