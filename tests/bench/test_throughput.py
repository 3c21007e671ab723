"""Throughput to one endpoint, beside a plain httpx loop, in one run (issue 10, target 1).

    CATENTIO_BENCH=1 python -m pytest tests/bench -k throughput
    CATENTIO_BENCH=1 CATENTIO_BENCH_EVENTS=20000 python -m pytest tests/bench -k throughput

``distributed``: one ``poller`` and ``CATENTIO_BENCH_WORKERS`` (2) ``worker`` processes of
``CATENTIO_BENCH_THREADS`` (8) threads on PostgreSQL + Redis, against a plain loop of
2 x 8 = 16 threads. ``embedded``: ``run`` on SQLite with 8 threads, against 8 threads.
The endpoint's concurrency limit is set to the number of connections, so it is not what
is measured. The plain loop runs right before and right after ours, on bodies of the same
shape and then on the very bodies delivered; the ratio is ours ÷ their mean.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bench.config import BenchConfig
from tests.bench.deployment import Deployment, Group
from tests.bench.drain import add_warm_up_endpoint, drain, warm_up
from tests.bench.plain_loop import LoopResult, run_loop
from tests.bench.profile import Sampler, profile_text
from tests.bench.receiver import ReceiverProcess
from tests.bench.results import MS, Results, record_usage

pytestmark = [pytest.mark.bench, pytest.mark.timeout(7200)]

REPO = Path(__file__).resolve().parents[2]
MIN_PLAIN_POSTS = 3000
"""The plain loop repeats the bodies up to this many posts: a loop shorter than a couple
of seconds says more about thread start-up and the neighbours than about the loop."""


def plain(
    receiver: ReceiverProcess, path: str, bodies: list[str], threads: int, workdir: Path
) -> tuple[LoopResult, float | None]:
    """One plain loop; its result and the receiver's CPU per request meanwhile."""
    repeats = -(-MIN_PLAIN_POSTS // len(bodies))
    bodies_file = workdir / f"bodies-{len(bodies)}.json"
    bodies_file.write_text(json.dumps(bodies * repeats))
    before = receiver.stats()
    result = run_loop(receiver.url(path), threads, bodies_file, REPO)
    after = receiver.stats()
    requests = sum(after["requests"].values()) - sum(before["requests"].values())
    per_request = (after["cpu"] - before["cpu"]) / requests if requests else None
    return result, per_request


def measure_throughput(
    deployment: Deployment,
    config: BenchConfig,
    results: Results,
    scenario: str,
    *,
    connections: int,
    with_plain_loop: bool = True,
) -> float:
    """Deliveries/s of ``config.events`` to one endpoint (and, beside it, the plain loop);
    records every figure under ``scenario`` and returns the rate."""
    workdir = deployment.workdir
    receiver = deployment.receiver
    path = f"/ok/{deployment.tag}"
    plain_path = f"/ok/plain-{deployment.tag}"
    deployment.add_endpoint(workspace="ws_one", path=path, max_concurrency=connections)
    add_warm_up_endpoint(deployment)
    deployment.start()
    warm_up(deployment, timeout=config.timeout)

    loops: list[LoopResult] = []
    receiver_cpu: list[float] = []
    if with_plain_loop:
        shaped = deployment.render_bodies(config.events)
        loop, per_request = plain(receiver, plain_path, shaped, connections, workdir)
        loops.append(loop)
        receiver_cpu += [per_request] if per_request is not None else []

    sampler = None
    if config.pyspy > 0:
        assert Sampler.available(), "CATENTIO_BENCH_PYSPY needs py-spy (pip install py-spy)"
        target = deployment.processes[-1]  # the last worker, or ``run``
        sampler = Sampler(target.popen.pid, config.pyspy, workdir / f"{target.name}.pyspy.txt")
    window = drain(
        deployment,
        [Group("ws_one", config.events)],
        workspace="ws_one",
        expect=config.events,
        timeout=config.timeout,
        on_commit=sampler.start if sampler is not None else None,
    )
    assert window.finished, f"only {window.delivered} of {config.events} delivered"
    if sampler is not None:
        profile = sampler.finish()
        if profile is not None:
            results.detail(scenario, "pyspy", profile.__dict__)
            results.note(profile_text(scenario, deployment.processes[-1].name, profile))

    if with_plain_loop:
        bodies = window.published.bodies["ws_one"]
        loop, per_request = plain(receiver, plain_path, bodies, connections, workdir)
        loops.append(loop)
        receiver_cpu += [per_request] if per_request is not None else []

    plain_rate = sum(loop.rate for loop in loops) / len(loops) if loops else None
    results.add(
        scenario,
        "deliveries/s",
        window.rate,
        "1/s",
        ratio=window.rate / plain_rate if plain_rate else None,
        versus=f"plain httpx loop, {connections} threads" if plain_rate else "",
    )
    for index, loop in enumerate(loops):
        results.add(
            scenario,
            f"plain loop {('before', 'after')[index]} posts/s",
            loop.rate,
            "1/s",
        )
        results.add(
            scenario,
            f"plain loop {('before', 'after')[index]} CPU per post",
            loop.cpu / loop.posts * MS,
            "ms",
        )
        assert loop.errors == 0, f"the plain loop saw {loop.errors} errors"
    if receiver_cpu:
        results.add(
            scenario,
            "receiver CPU per request (plain loop)",
            sum(receiver_cpu) / len(receiver_cpu) * MS,
            "ms",
        )
    results.add(scenario, "events", config.events)
    results.add(scenario, "drain wall time", window.seconds, "s")
    record_usage(results, scenario, window.usage, window.delivered)
    results.detail(scenario, "plain_loops", [loop.__dict__ for loop in loops])
    return window.rate


@pytest.mark.parametrize("kind", ["distributed", "embedded"])
def test_throughput(
    kind: str,
    make_deployment: Callable[..., Deployment],
    bench_config: BenchConfig,
    bench_results: Results,
) -> None:
    """Measure; assert only that every delivery arrived."""
    connections = (
        bench_config.workers * bench_config.threads
        if kind == "distributed"
        else bench_config.embedded_threads
    )
    with make_deployment(kind) as deployment:
        measure_throughput(
            deployment, bench_config, bench_results, f"throughput {kind}", connections=connections
        )
