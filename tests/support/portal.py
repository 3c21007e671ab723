"""The portal under a real uvicorn on loopback (alone, or in the API process as in
production), and a client signed in to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from tests.support.services import PORTAL_SECRET
from worker.api.server import ApiService, context_for_runtime
from worker.portal.app import MOUNT_PATH
from worker.portal.links import mint_link
from worker.portal.tokens import Tokens
from worker.runtime import Runtime

__all__ = ["PORTAL_SECRET", "PortalServer", "serve", "serve_api", "standalone_app"]


def standalone_app(portal: Starlette) -> Starlette:
    """``portal`` mounted at ``/portal`` of an otherwise empty app: the portal without
    the API around it, for tests of the portal alone (the API process mounts it in
    production, see :func:`worker.api.app.create_app`)."""
    return Starlette(routes=[Mount(MOUNT_PATH, portal)])


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) until the block ends;
    yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="portal-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serve_api(runtime: Runtime) -> Iterator[ApiService]:
    """The API process of ``runtime`` (as ``run`` serves it: its database, secret box
    and broker), the portal mounted in it, on a free loopback port until the block
    ends. The portal links it mints point at that port."""
    context = context_for_runtime(runtime)
    service = ApiService(context, host="127.0.0.1", port=0)
    service.start()
    context.settings = context.settings.with_(portal_url=service.base_url)
    try:
        yield service
    finally:
        service.stop(dispose=False)


@dataclass
class PortalServer:
    """A running portal and the runtime (database, broker) behind it."""

    url: str
    runtime: Runtime
    tokens: Tokens

    def link(
        self,
        workspace_id: str = "ws_a",
        *,
        ttl: timedelta = timedelta(hours=1),
        read_only: bool = False,
    ) -> str:
        """A freshly minted portal link to this server."""
        settings = self.runtime.settings.with_(portal_url=self.url)
        link = mint_link(
            settings,
            self.tokens,
            workspace_id=workspace_id,
            now=self.runtime.clock(),
            ttl=ttl,
            read_only=read_only,
        )
        return link.url

    @contextmanager
    def client(
        self, workspace_id: str = "ws_a", *, read_only: bool = False
    ) -> Iterator[httpx.Client]:
        """An httpx client signed in to ``workspace_id`` (its session cookie set)."""
        with httpx.Client(base_url=self.url, timeout=10, follow_redirects=False) as client:
            response = client.get(self.link(workspace_id, read_only=read_only))
            assert response.status_code == 200, response.text
            yield client
