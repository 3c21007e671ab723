"""A real API for tests: uvicorn on a free loopback port, in this process, with real httpx
clients; builders for keys and endpoints; the error-envelope assertion."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from tests.support.processes import worker_command
from tests.support.services import fast_settings
from worker.access.keys import create_key
from worker.api.server import ApiService, build_context
from worker.endpoints.registry import create_endpoint
from worker.settings import Settings
from worker.telemetry.exporter import Telemetry
from worker.telemetry.tracing import NO_TRACING, Tracing


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


def start_api(
    database_url: str,
    *,
    metered: bool = False,
    tracing: Tracing = NO_TRACING,
    **overrides: Any,
) -> Api:
    """An API (and the portal mounted in it) on a free loopback port; ``rung`` records
    what it asks the workers. Unless ``portal_url`` is given, the portal links it mints
    point at the port it listens on (known only once it does). ``metered``: with a
    metrics registry (``api.service.context.telemetry``)."""
    settings = fast_settings(database_url, **overrides)
    rung: list[str] = []
    telemetry = Telemetry(settings, process="api") if metered else None
    context = build_context(
        settings, ring=rung.extend, migrate=True, telemetry=telemetry, tracing=tracing
    )
    service = ApiService(context, host="127.0.0.1", port=0)
    service.start()
    if "portal_url" not in overrides:
        settings = settings.with_(portal_url=service.base_url)
        context.settings = settings
    return Api(service, settings, rung)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    """The response is the error envelope with that status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["data"] is None
    assert body["error"]["code"] == code
    assert set(body["error"]) == {"code", "message", "field"}
    assert set(body["meta"]) == {"requestId", "timestamp"}
    assert "Traceback" not in response.text
    return dict(body["error"])


def spawn_logged(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m worker ARGS`` with its log (stderr) going to the file ``log``."""
    with log.open("wb") as stream:
        return subprocess.Popen(
            worker_command(*args),
            env={**env, "CATENTIO_LOG_FORMAT": "json", "CATENTIO_LOG_LEVEL": "INFO"},
            stdout=subprocess.DEVNULL,
            stderr=stream,
        )


def listening_port(process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> int:
    """The port of the ``api.started`` line the process logged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            try:
                record: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "api.started":
                return int(record["port"])
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"no api.started line (exit {process.poll()}): {log.read_text()[-2000:]}")
