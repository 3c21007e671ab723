"""A/B: the throughput scenario twice in one run, B differing from A only in the product's
environment or in its code; every figure of B ÷ A, with a second A for the drift.

    # issue 13: worker CPU per delivery with metrics on ÷ off
    CATENTIO_BENCH=1 CATENTIO_BENCH_AB_ENV='CATENTIO_METRICS_PORT=91{n:02d}' \\
        python -m pytest tests/bench -k a_b
    # an engine against the one before it, side by side on the same noisy machine
    git worktree add ../engine-before <commit>
    CATENTIO_BENCH=1 CATENTIO_BENCH_AB_CHECKOUT=../engine-before python -m pytest tests/bench -k a_b

``CATENTIO_BENCH_AB_ENV`` is ``NAME=value,…`` added to every product process of run B;
``{n}`` in a value becomes the process's ordinal (poller 1, workers 2, 3, …), for
settings that must differ per process, like a port. ``CATENTIO_BENCH_AB_CHECKOUT`` is a
checkout whose ``worker`` and ``outbox`` run B's processes (its own ``db upgrade``
included); the harness itself, the receiver and the producer stay this checkout's. With a
checkout, B is the *other* code: read "A" as this checkout. Runs A, B, A again; ratios
are B ÷ the mean of the two As. Skipped unless one of the variables is set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.bench.config import BenchConfig
from tests.bench.deployment import Deployment
from tests.bench.results import Results
from tests.bench.test_throughput import measure_throughput

pytestmark = [pytest.mark.bench, pytest.mark.timeout(7200)]

RATIO_FIGURES = (
    ("deliveries/s", "1/s"),
    ("worker CPU per delivery", "ms"),
    ("poller CPU per delivery", "ms"),
    ("PostgreSQL backends CPU per delivery", "ms"),
    ("ours in all (processes + backends) CPU per delivery", "ms"),
    ("worker sql per delivery", ""),
    ("worker redis per delivery", ""),
    ("other processes' CPU meanwhile (noise)", "cores"),
)


def test_a_b(
    make_deployment: Callable[..., Deployment],
    bench_config: BenchConfig,
    bench_results: Results,
) -> None:
    """Measure A, B, A; assert only that every delivery arrived."""
    extra = bench_config.ab_product_env
    checkout = Path(bench_config.ab_checkout).resolve() if bench_config.ab_checkout else None
    if not extra and checkout is None:
        pytest.skip("set CATENTIO_BENCH_AB_ENV='NAME=value,…' or CATENTIO_BENCH_AB_CHECKOUT")
    if checkout is not None:
        assert (checkout / "worker").is_dir(), f"{checkout} is not a checkout of this project"

    def run_b_env(_name: str, index: int) -> Mapping[str, str]:
        return {k: v.format(n=index) for k, v in extra.items()}

    label_b = " ".join(
        part
        for part in (
            f"env {bench_config.ab_env}" if extra else "",
            f"checkout {checkout.name}" if checkout else "",
        )
        if part
    )
    connections = bench_config.workers * bench_config.threads
    run_b: dict[str, Any] = {"process_env": run_b_env, "checkout": checkout}
    runs: list[tuple[str, dict[str, Any]]] = [("A", {}), ("B", run_b), ("A again", {})]
    for label, options in runs:
        with make_deployment("distributed", **options) as deployment:
            measure_throughput(
                deployment,
                bench_config,
                bench_results,
                f"a/b {label}",
                connections=connections,
                with_plain_loop=False,
            )
    values = {
        (row.scenario, row.figure): row.value
        for row in bench_results.rows
        if row.scenario.startswith("a/b ") and row.value is not None
    }
    for figure, unit in RATIO_FIGURES:
        known = [
            v for v in (values.get(("a/b A", figure)), values.get(("a/b A again", figure))) if v
        ]
        b = values.get(("a/b B", figure))
        if b is None or not known:
            continue
        mean_a = sum(known) / len(known)
        bench_results.add(
            f"a/b B ({label_b}) ÷ A", figure, b, unit, ratio=b / mean_a, versus="mean of A runs"
        )
