"""Fixtures: the API on SQLite and PostgreSQL (``tests.support.api`` builds it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.api import Api, start_api


@pytest.fixture
def make_api() -> Iterator[Callable[..., Api]]:
    """Builder: ``make_api(database_url, **settings_overrides)``; stopped afterwards."""
    started: list[Api] = []

    def build(database_url: str, **overrides: Any) -> Api:
        api = start_api(database_url, **overrides)
        started.append(api)
        return api

    yield build
    for api in reversed(started):
        api.close()


@pytest.fixture
def api(make_api: Callable[..., Api], database_url: str) -> Api:
    """The API on SQLite and on PostgreSQL."""
    return make_api(database_url)


@pytest.fixture
def sqlite_api(make_api: Callable[..., Api], sqlite_url: str) -> Api:
    """The API on SQLite only (for what does not depend on the database)."""
    return make_api(sqlite_url)
