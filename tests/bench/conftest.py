"""Benchmarks run only on demand: they measure, they do not test behaviour.

The root ``tests/conftest.py`` collects ``tests/bench`` only when asked
(``CATENTIO_BENCH=1``, ``--run-bench`` or ``-m bench``). The delivery-engine benchmark's
fixtures live here too (see tests/bench/README.md): ``bench_config`` (sizes from
``CATENTIO_BENCH_*``), ``bench_receiver`` (the receiver process), ``make_deployment``
(a product installation of the benchmark's own) and ``bench_results`` (the figures,
printed as a table at the end and written as JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bench.config import BenchConfig
from tests.bench.deployment import Deployment
from tests.bench.receiver import ReceiverProcess
from tests.bench.results import Results

# -- the delivery-engine benchmark's fixtures (tests/bench/test_engine_*.py) ------------

RESULTS = pytest.StashKey["Results"]()
RESULTS_PATH = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def bench_config() -> BenchConfig:
    """Sizes and knobs from ``CATENTIO_BENCH_*`` (see tests/bench/config.py)."""
    return BenchConfig.from_env()


@pytest.fixture(scope="session")
def bench_results(
    request: pytest.FixtureRequest,
    bench_config: BenchConfig,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Results]:
    """Every figure of the session; written as JSON at the end and printed as a table."""
    results = Results()
    request.config.stash[RESULTS] = results
    yield results
    path = (
        Path(bench_config.out)
        if bench_config.out
        else (tmp_path_factory.getbasetemp() / "bench-results.json")
    )
    results.write(path)
    request.config.stash[RESULTS_PATH] = path


@pytest.fixture(scope="session")
def bench_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    """The receiver, in its own process, shared by every scenario of the session."""
    receiver = ReceiverProcess(tmp_path_factory.mktemp("receiver"))
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def make_deployment(
    request: pytest.FixtureRequest,
    bench_config: BenchConfig,
    bench_receiver: ReceiverProcess,
    tmp_path: Path,
) -> Iterator[Callable[..., Deployment]]:
    """Builder: ``make_deployment("distributed" | "embedded", **overrides)``; every
    deployment is stopped and its schema and Redis keys removed afterwards."""
    opened: list[Deployment] = []

    def make(kind: str, **overrides: Any) -> Deployment:
        options: dict[str, Any] = {
            "workers": bench_config.workers,
            "threads": bench_config.threads
            if kind == "distributed"
            else bench_config.embedded_threads,
            "env": bench_config.product_env,
            "count_statements": bool(bench_config.count),
        }
        if bench_config.checkout:
            options["checkout"] = Path(bench_config.checkout).resolve()
        if kind == "distributed":
            options["postgres_url"] = request.getfixturevalue("postgres_server")
            options["redis_url"] = request.getfixturevalue("redis_server")
        options.update(overrides)
        deployment = Deployment(kind=kind, workdir=tmp_path, receiver=bench_receiver, **options)
        opened.append(deployment)
        return deployment

    yield make
    for deployment in reversed(opened):
        deployment.close()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The table of every figure measured in this session, and where the JSON went."""
    results = config.stash.get(RESULTS, None)
    if results is None or not results.rows:
        return
    terminalreporter.write_sep("=", "benchmark figures")
    terminalreporter.write_line(results.table())
    for note in results.notes:
        terminalreporter.write_line("\n" + note)
    path = config.stash.get(RESULTS_PATH, None)
    if path is not None:
        terminalreporter.write_line(f"\nJSON: {path}")
