"""Two runs of the throughput scenario that differ only in the product's environment:
CPU per delivery of B ÷ A (e.g. issue 13: worker CPU with metrics on ÷ off).

    CATENTIO_BENCH=1 CATENTIO_BENCH_AB_ENV='CATENTIO_METRICS_PORT=91{n:02d}' \\
        python -m pytest tests/bench -k env_ab

``CATENTIO_BENCH_AB_ENV`` is ``NAME=value,…`` added to every product process of run B;
``{n}`` in a value becomes the process's ordinal (poller 1, workers 2, 3, …), for
settings that must differ per process, like a port. Runs A, B, A again (the second A
shows how much the machine drifted meanwhile); the ratios are B ÷ the mean of the As.
Skipped unless the variable is set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from tests.bench.config import BenchConfig
from tests.bench.deployment import Deployment
from tests.bench.results import Results
from tests.bench.test_throughput import measure_throughput

pytestmark = [pytest.mark.bench, pytest.mark.timeout(7200)]

RATIO_FIGURES = ("worker CPU per delivery", "poller CPU per delivery", "deliveries/s")


def test_env_ab(
    make_deployment: Callable[..., Deployment],
    bench_config: BenchConfig,
    bench_results: Results,
) -> None:
    """Measure A, B, A; assert only that every delivery arrived."""
    extra = bench_config.ab_product_env
    if not extra:
        pytest.skip("set CATENTIO_BENCH_AB_ENV='NAME=value,…' for run B")

    def run_b_env(_name: str, index: int) -> Mapping[str, str]:
        return {k: v.format(n=index) for k, v in extra.items()}

    connections = bench_config.workers * bench_config.threads
    runs = (("A", None), ("B", run_b_env), ("A again", None))
    for label, process_env in runs:
        with make_deployment("distributed", process_env=process_env) as deployment:
            measure_throughput(
                deployment,
                bench_config,
                bench_results,
                f"env {label}",
                connections=connections,
                with_plain_loop=False,
            )
    values = {
        (row.scenario, row.figure): row.value
        for row in bench_results.rows
        if row.scenario.startswith("env ") and row.value is not None
    }
    for figure in RATIO_FIGURES:
        a = [values.get(("env A", figure)), values.get(("env A again", figure))]
        b = values.get(("env B", figure))
        known = [v for v in a if v]
        if b is None or not known:
            continue
        mean_a = sum(known) / len(known)
        bench_results.add(
            f"env B ({bench_config.ab_env}) ÷ A",
            figure,
            b,
            "ms" if "CPU" in figure else "1/s",
            ratio=b / mean_a,
            versus="mean of A runs",
        )
