"""Benchmarks run only on demand: they measure, they do not test behaviour.

Run them with any of::

    CATENTIO_BENCH=1 python -m pytest tests/bench
    python -m pytest tests/bench --run-bench
    python -m pytest tests -m bench

Otherwise every test marked ``bench`` is skipped.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--run-bench`` (recognised when tests/bench is on the command line)."""
    parser.addoption("--run-bench", action="store_true", default=False, help="run the benchmarks")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``bench`` marker here rather than in the root configuration."""
    config.addinivalue_line("markers", "bench: a benchmark; runs only on demand")


def _requested(config: pytest.Config) -> bool:
    if os.environ.get("CATENTIO_BENCH") == "1":
        return True
    if config.getoption("--run-bench", default=False):
        return True
    return "bench" in (config.getoption("markexpr", default="") or "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip benchmarks unless asked for."""
    if _requested(config):
        return
    skip = pytest.mark.skip(reason="benchmark: set CATENTIO_BENCH=1, or use --run-bench / -m bench")
    for item in items:
        if item.get_closest_marker("bench") is not None:
            item.add_marker(skip)
