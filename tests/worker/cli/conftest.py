"""Fixtures for the ops command line: a seeded history and the real console entry point."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import Result

from tests.support.cli import Invoke, cli_env, run_cli
from tests.support.history import History, seed_history


@pytest.fixture
def history(migrated: str) -> History:
    """A seeded history of 1,500 events and about 2,600 deliveries."""
    return seed_history(migrated)


@pytest.fixture
def cli(migrated: str) -> Iterator[Invoke]:
    """``cli(*args, input=None, **env)``: run ``catentio-webhooks`` through its real entry
    point against the test's database; extra keyword arguments are environment values."""

    def invoke(*args: str, input: str | None = None, **env: str) -> Result:
        return run_cli(cli_env(migrated, **env), *args, input=input)

    yield invoke
