"""Fan-out of each event to 1,000 endpoints of a workspace, ÷ the same number of
deliveries to one endpoint (issue 10, target 5).

    CATENTIO_BENCH=1 python -m pytest tests/bench -k fanout
    CATENTIO_BENCH=1 CATENTIO_BENCH_FANOUT_DELIVERIES=20000 python -m pytest tests/bench -k fanout

One deployment (poller + workers on PostgreSQL + Redis), two workspaces: ``ws_one`` with
one endpoint (its concurrency limit the number of worker threads) and ``ws_fan`` with
``CATENTIO_BENCH_FANOUT_ENDPOINTS`` (1,000; one made with ``endpoints add``, the rest
copied in SQL), all on the same receiver route. First ``CATENTIO_BENCH_FANOUT_DELIVERIES``
(2,000) events to ``ws_one``, then deliveries ÷ endpoints events to ``ws_fan`` — the same
number of deliveries — each backlog in one commit.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.bench.config import BenchConfig
from tests.bench.deployment import Deployment, Group
from tests.bench.drain import add_warm_up_endpoint, drain, warm_up
from tests.bench.results import Results, record_usage

pytestmark = [pytest.mark.bench, pytest.mark.timeout(7200)]


def test_fanout_to_many_endpoints(
    make_deployment: Callable[..., Deployment],
    bench_config: BenchConfig,
    bench_results: Results,
) -> None:
    """Measure; assert that every delivery arrived."""
    results = bench_results
    config = bench_config
    endpoints = config.fanout_endpoints
    fan_events = max(1, config.fanout_deliveries // endpoints)
    with make_deployment("distributed") as deployment:
        deployment.add_endpoint(
            workspace="ws_one",
            path=f"/ok/one-{deployment.tag}",
            max_concurrency=config.workers * config.threads,
        )
        path = f"/ok/fan-{deployment.tag}"
        first = deployment.add_endpoint(workspace="ws_fan", path=path)
        deployment.copy_endpoint(first, endpoints - 1, path)
        add_warm_up_endpoint(deployment)
        deployment.start()
        warm_up(deployment, timeout=config.timeout)

        one = drain(
            deployment,
            [Group("ws_one", config.fanout_deliveries)],
            workspace="ws_one",
            expect=config.fanout_deliveries,
            timeout=config.timeout,
        )
        fan = drain(
            deployment,
            [Group("ws_fan", fan_events)],
            workspace="ws_fan",
            expect=fan_events * endpoints,
            timeout=config.timeout,
        )
    assert one.finished and fan.finished, f"delivered {one.delivered} and {fan.delivered}"
    results.add("fan-out: one endpoint", "deliveries/s", one.rate, "1/s")
    results.add("fan-out: one endpoint", "deliveries", one.delivered)
    record_usage(results, "fan-out: one endpoint", one.usage, one.delivered)
    scenario = f"fan-out: {endpoints} endpoints"
    ratio = fan.rate / one.rate
    results.add(scenario, "deliveries/s", fan.rate, "1/s", ratio=ratio, versus="one endpoint")
    results.add(scenario, "deliveries", fan.delivered)
    record_usage(results, scenario, fan.usage, fan.delivered)
