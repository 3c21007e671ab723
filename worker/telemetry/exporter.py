"""One process's metrics registry and its HTTP listener: ``/metrics``, ``/healthz``,
``/readyz``.

One exporter per process, not prometheus-client's multiprocess mode: every process
of this project is its own process type (poller, worker, api, run), started on its own
(``CATENTIO_METRICS_PORT``, off by default), and its dramatiq threads share the
process's registry. Multiprocess mode exists for pre-forking servers whose children
cannot each be scraped; it costs a directory of mmap files that must be wiped on every
restart and it cannot do the scrape-time state gauges. Several worker processes on one
host each get their own port (the systemd template uses its instance name as the port).

``/healthz`` answers 200 while the process runs (liveness). ``/readyz`` answers 200
when the database and the broker are reachable, 503 otherwise, one line per check
(readiness: :mod:`worker.ops.checks`). The API process can serve the same three paths
on its own app and port instead (:meth:`Telemetry.asgi_exporter`,
``CATENTIO_API_METRICS=true``): a platform that gives a web process one port gets its
metrics there too.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from socketserver import ThreadingMixIn
from typing import Any, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import anyio.to_thread
import structlog
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    make_asgi_app,
    make_wsgi_app,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from worker.errors import ConfigurationError
from worker.ops.checks import Check, broker_client, broker_reachable, database_reachable
from worker.settings import Settings
from worker.telemetry.gauges import StateGauges
from worker.telemetry.metrics import PREFIX, PrometheusMetrics
from worker.telemetry.requests import PrometheusRequestMetrics

log = structlog.get_logger("worker.telemetry")

Readiness = Callable[[], list[Check]]
"""The checks ``/readyz`` runs (database and broker reachable)."""

PATHS = ("/metrics", "/healthz", "/readyz")
"""What the exporter serves."""

READINESS_CACHE_SECONDS = 1.0
"""How long the API's ``/readyz`` answer is reused: on a public port, a flood of probes
costs the database and the broker one round of checks per second."""

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _package_version() -> str:
    try:
        return version("catentio-webhooks")
    except PackageNotFoundError:
        return "unknown"


class Telemetry:
    """The registry of one process: the delivery metrics, the state gauges, and the
    standard process figures (CPU, memory, open files, GC)."""

    def __init__(self, settings: Settings, *, process: str) -> None:
        # No `_created` series beside every counter: Prometheus does not use them in the
        # text format and they double what a dashboard's metric browser lists.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics = PrometheusMetrics(
            self.registry, endpoint_labels=settings.metrics_endpoint_labels
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        Info(f"{PREFIX}", "What this process is.", registry=self.registry).info(
            {"process": process, "version": _package_version()}
        )
        self._gauges: StateGauges | None = None
        self._requests: PrometheusRequestMetrics | None = None
        self._lock = threading.Lock()

    def request_metrics(self) -> PrometheusRequestMetrics:
        """The API's per-request families, registered on first use (only a process
        that serves the API lists them)."""
        with self._lock:
            if self._requests is None:
                self._requests = PrometheusRequestMetrics(self.registry)
            return self._requests

    def watch_state(self, sessions: sessionmaker[Session]) -> None:
        """Export the database-derived gauges from this process too (once)."""
        with self._lock:
            if self._gauges is None:
                self._gauges = StateGauges(
                    sessions, circuit_threshold=self.settings.circuit_threshold
                )
                self.registry.register(self._gauges)

    def wsgi_app(self, readiness: Readiness) -> WSGIApp:
        """``/metrics``, ``/healthz`` and ``/readyz`` as one WSGI app."""
        metrics = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/metrics":
                return metrics(environ, start_response)  # type: ignore[no-any-return]
            if path == "/healthz":
                return _plain(start_response, "200 OK", "ok\n")
            if path == "/readyz":
                checks = readiness()
                ready = all(c.ok for c in checks)
                body = "".join(f"{'ok' if c.ok else 'FAIL'} {c.name}: {c.detail}\n" for c in checks)
                return _plain(
                    start_response, "200 OK" if ready else "503 Service Unavailable", body
                )
            return _plain(
                start_response, "404 Not Found", "not found: /metrics, /healthz, /readyz\n"
            )

        return app

    def asgi_app(self) -> ASGIApp:
        """``/metrics`` alone as an ASGI app (``app.mount("/metrics", ...)``)."""
        return cast(ASGIApp, make_asgi_app(self.registry))

    def asgi_exporter(self, readiness: Readiness) -> ASGIApp:
        """``/metrics``, ``/healthz`` and ``/readyz`` as one ASGI app, answering as
        :meth:`wsgi_app` does; the API serves it on its own port. ``/readyz`` answers
        from a cache of :data:`READINESS_CACHE_SECONDS`."""
        metrics = self.asgi_app()
        ready = _CachedReadiness(readiness, READINESS_CACHE_SECONDS)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope.get("path", "")
            if path == "/metrics":
                await metrics(scope, receive, send)
                return
            if path == "/healthz":
                response = PlainTextResponse("ok\n")
            elif path == "/readyz":
                checks = await anyio.to_thread.run_sync(ready)
                body = "".join(f"{'ok' if c.ok else 'FAIL'} {c.name}: {c.detail}\n" for c in checks)
                response = PlainTextResponse(body, 200 if all(c.ok for c in checks) else 503)
            else:
                response = PlainTextResponse("not found: /metrics, /healthz, /readyz\n", 404)
            await response(scope, receive, send)

        return app

    def serve(self, readiness: Readiness) -> MetricsServer:
        """Start the listener on ``CATENTIO_METRICS_HOST:CATENTIO_METRICS_PORT``."""
        port = self.settings.metrics_port
        if port is None:
            raise ValueError("metrics are off (no CATENTIO_METRICS_PORT)")
        server = MetricsServer(self.wsgi_app(readiness), self.settings.metrics_host, port)
        server.start()
        return server


class _CachedReadiness:
    """``readiness()``, asked at most once per ``seconds`` (thread-safe)."""

    def __init__(self, readiness: Readiness, seconds: float) -> None:
        self._readiness = readiness
        self._seconds = seconds
        self._lock = threading.Lock()
        self._answer: tuple[float, list[Check]] | None = None

    def __call__(self) -> list[Check]:
        with self._lock:
            now = time.monotonic()
            if self._answer is None or now - self._answer[0] >= self._seconds:
                self._answer = (now, self._readiness())
            return self._answer[1]


def _plain(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
    )
    return [data]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _IPv6ThreadingServer(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # Scrapes every 15 s are not news; the process's own log says what matters.
        return


class MetricsServer:
    """The listener thread. ``port`` 0 picks a free port; :attr:`port` tells which.
    A port that is taken is a :class:`~worker.errors.ConfigurationError` naming it."""

    def __init__(self, app: WSGIApp, host: str, port: int) -> None:
        server_class = _IPv6ThreadingServer if ":" in host else _ThreadingServer
        try:
            self._server = make_server(
                host, port, app, server_class=server_class, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise ConfigurationError(
                f"CATENTIO_METRICS_PORT={port}: cannot listen on {host}:{port}: "
                f"{exc.strerror or exc}"
            ) from None
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="catentio-metrics", daemon=True
        )

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread.start()
        log.info("metrics.listening", host=self.host, port=self.port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def serving(
    telemetry: Telemetry | None, engine: Engine, sessions: sessionmaker[Session]
) -> Iterator[MetricsServer | None]:
    """While the block runs, serve ``telemetry`` (if metrics are on) with the state
    gauges of this database and a ``/readyz`` that checks it and the broker."""
    if telemetry is None:
        yield None
        return
    settings = telemetry.settings
    client = broker_client(settings) if settings.redis_url else None
    telemetry.watch_state(sessions)
    server = telemetry.serve(lambda: [database_reachable(engine), broker_reachable(client)])
    try:
        yield server
    finally:
        server.close()
        if client is not None:
            client.close()
