"""A real API: uvicorn on a free loopback port, in this process, on SQLite or PostgreSQL,
with a real httpx client, and builders for keys and endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import fast_settings
from worker.access.keys import create_key
from worker.api.server import ApiService, build_context
from worker.endpoints.registry import create_endpoint
from worker.settings import Settings


@dataclass
class Api:
    """A served API and what a test needs around it."""

    service: ApiService
    settings: Settings
    rung: list[str] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.service.context.sessions

    @property
    def base_url(self) -> str:
        return self.service.base_url

    def key(self, workspace_id: str | None = "ws_a", *, scope: str = "write") -> str:
        """Mint a key (None: an all-workspaces key)."""
        with self.sessions() as session, session.begin():
            return create_key(session, workspace_id=workspace_id, scope=scope).key

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        """An httpx client for the API, with the key as Bearer."""
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=10.0)
        self.clients.append(client)
        return client

    def as_workspace(self, workspace_id: str = "ws_a", *, scope: str = "write") -> httpx.Client:
        """A client with a fresh key of ``workspace_id``."""
        return self.client(self.key(workspace_id, scope=scope))

    def close(self) -> None:
        """Close the clients and stop the server."""
        for client in self.clients:
            client.close()
        self.service.stop()

    def endpoint(self, workspace_id: str = "ws_a", **kwargs: Any) -> str:
        """Register an endpoint directly (not through the API); returns its id."""
        values: dict[str, Any] = {
            "url": "https://example.com/hook",
            "event_types": ["*"],
        }
        values.update(kwargs)
        with self.sessions() as session, session.begin():
            created = create_endpoint(
                session, self.service.context.box, workspace_id=workspace_id, **values
            )
        return created.endpoint.id


def start_api(database_url: str, **overrides: Any) -> Api:
    """An API on a free loopback port; ``rung`` records what it asks the workers."""
    settings = fast_settings(database_url, **overrides)
    rung: list[str] = []
    context = build_context(settings, ring=rung.extend, migrate=True)
    service = ApiService(context, host="127.0.0.1", port=0)
    service.start()
    return Api(service, settings, rung)


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
