"""Serving the API (and the portal mounted at ``/portal``) with uvicorn:
``catentio-webhooks api`` in the foreground, or a thread beside the poller and workers
in ``catentio-webhooks run``.

:func:`build_context` builds the context from settings (portal secret, secret box,
database, limiter, idempotency store, the bell); :class:`ApiService` serves it and,
while it does, prunes expired idempotency records once a minute.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import structlog
import uvicorn
from fastapi import FastAPI

from outbox.clock import Clock, utcnow
from worker.api.app import create_app
from worker.api.context import ApiContext, Ring
from worker.api.idempotency import IdempotencyStore
from worker.api.ratelimit import RateLimiter
from worker.delivery.bell import Bell
from worker.endpoints.secretbox import open_secret_box
from worker.errors import ConfigurationError
from worker.ops.replay_runs import ReplayRunner
from worker.portal.keys import portal_secrets
from worker.portal.tokens import Tokens
from worker.runtime import Runtime, ensure_schema, open_database
from worker.settings import Settings
from worker.telemetry.exporter import Telemetry
from worker.telemetry.tracing import NO_TRACING, Tracing

log = structlog.get_logger("worker.api")

PRUNE_INTERVAL = 60.0
"""Seconds between two deletions of expired idempotency records."""


def portal_tokens_for(settings: Settings) -> Tokens:
    """What signs and checks the portal's links and sessions in this process. Raises
    ``ConfigurationError`` on PostgreSQL without ``CATENTIO_PORTAL_SECRET`` (and for a
    secret shorter than 32 characters); embedded mode uses its generated key file."""
    return Tokens(portal_secrets(settings))


def build_context(
    settings: Settings,
    *,
    ring: Ring | None = None,
    clock: Clock = utcnow,
    migrate: bool = False,
    telemetry: Telemetry | None = None,
    tracing: Tracing = NO_TRACING,
) -> ApiContext:
    """Everything the API needs, from settings. ``ring`` defaults to the Redis bell
    (None in embedded mode without one: the ``run`` process passes its own). With
    ``telemetry`` requests are counted in its registry; ``tracing`` traces requests and
    their SQL (the context owns it: :meth:`ApiService.close` flushes it).

    Raises ``ConfigurationError`` before opening anything when a key is missing (on
    PostgreSQL, ``CATENTIO_PORTAL_SECRET`` and ``CATENTIO_ENCRYPTION_KEYS`` are required).
    """
    portal_tokens = portal_tokens_for(settings)
    box = open_secret_box(settings.encryption_keys, settings.database_url)
    engine, sessions = open_database(settings)
    tracing.instrument_engine(engine)
    try:
        ensure_schema(engine, migrate=migrate)
    except BaseException:
        engine.dispose()
        raise
    if ring is None:
        bell = Bell.for_settings(settings)
        ring = bell.ring if bell is not None else None
    limiter = RateLimiter(
        read=settings.api_read_limit,
        write=settings.api_write_limit,
        redis_url=settings.redis_url,
        namespace=settings.redis_namespace,
    )
    return ApiContext(
        settings=settings,
        engine=engine,
        sessions=sessions,
        box=box,
        limiter=limiter,
        idempotency=IdempotencyStore(sessions, ttl=settings.idempotency_ttl, box=box),
        replays=ReplayRunner(sessions, ring=ring, clock=clock),
        portal_tokens=portal_tokens,
        ring=ring,
        clock=clock,
        telemetry=telemetry,
        tracing=tracing,
    )


class _Server(uvicorn.Server):
    """uvicorn's server, saying where it listens once the socket is open (port 0 picks
    a free one, which is only known then)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                log.info("api.started", host=host, port=port)


def context_for_runtime(
    runtime: Runtime,
    *,
    portal_tokens: Tokens | None = None,
    telemetry: Telemetry | None = None,
) -> ApiContext:
    """The API of the embedded ``run`` process: its database, secret box, broker (so a
    replay rings the workers of this very process), tracing and metrics registry.
    Without ``portal_tokens`` they are made from the settings (see
    :func:`portal_tokens_for`)."""
    settings = runtime.settings
    if portal_tokens is None:
        portal_tokens = portal_tokens_for(settings)
    limiter = RateLimiter(
        read=settings.api_read_limit,
        write=settings.api_write_limit,
        redis_url=settings.redis_url,
        namespace=settings.redis_namespace,
    )
    return ApiContext(
        settings=settings,
        engine=runtime.engine,
        sessions=runtime.sessions,
        box=runtime.box,
        limiter=limiter,
        idempotency=IdempotencyStore(
            runtime.sessions, ttl=settings.idempotency_ttl, box=runtime.box
        ),
        replays=ReplayRunner(runtime.sessions, ring=runtime.dispatch, clock=runtime.clock),
        portal_tokens=portal_tokens,
        ring=runtime.dispatch,
        clock=runtime.clock,
        telemetry=telemetry,
        tracing=runtime.tracing,
    )


@dataclass
class ApiService:
    """The app, its uvicorn server and the pruning timer of one process."""

    context: ApiContext
    host: str
    port: int
    app: FastAPI = field(init=False)
    server: uvicorn.Server = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.app = create_app(self.context)
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
        )
        self.server = _Server(config)

    @property
    def bound_port(self) -> int:
        """The port actually listened on (``port`` 0 picks a free one)."""
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.port

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.bound_port}"

    def serve(self) -> None:
        """Serve in the calling thread until SIGINT/SIGTERM (or :meth:`stop`)."""
        pruner = threading.Thread(target=self._prune_loop, name="catentio-api-prune", daemon=True)
        pruner.start()
        try:
            self.server.run()
        finally:
            self._stop.set()

    def start(self, *, timeout: float = 10.0) -> None:
        """Serve in a thread; returns once the socket listens."""
        self._thread = threading.Thread(target=self.serve, name="catentio-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigurationError(
                    f"the API could not listen on {self.host}:{self.port} (is the port taken?)"
                )
            time.sleep(0.01)

    def stop(self, *, dispose: bool = True) -> None:
        """Stop serving (the thread, if started) and release the context (``dispose``
        False: the engine belongs to someone else, as in ``run``)."""
        self.server.should_exit = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.close(dispose=dispose)

    def close(self, *, dispose: bool = True) -> None:
        """Finish running replays, release the limiter's connections and (``dispose``)
        the database engine and the tracing (its buffered spans exported)."""
        self.context.replays.close()
        self.context.limiter.close()
        if dispose:
            self.context.engine.dispose()
            self.context.tracing.shutdown()

    def _prune_loop(self) -> None:
        while not self._stop.wait(PRUNE_INTERVAL):
            try:
                pruned = self.context.idempotency.prune(now=self.context.clock())
            except Exception as exc:  # the database may be down; try again later
                log.warning("api.prune_failed", error=repr(exc))
                continue
            if pruned:
                log.info("api.idempotency_pruned", records=pruned)
