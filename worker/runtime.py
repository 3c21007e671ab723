"""Wiring: the database, secret box, sending loop, delivery engine, broker and actor of
one process.

``Runtime.open(settings)`` builds everything from settings, in that order, with the
edges (HTTP transport, clock, metrics) injectable: the metrics default to recording
nothing, and the long-running commands pass the Prometheus ones when metrics are on.
The command line, the embedded runner and the demo all start from here, so they run
the same code paths.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dramatiq
import httpx
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from outbox.clock import Clock, utcnow
from outbox.database import is_sqlite, make_engine, make_session_factory
from outbox.migrate import current_revision, head_revision, upgrade
from worker import startup
from worker.availability import Availability
from worker.delivery.actor import DeliverActor, declare_deliver_actor
from worker.delivery.bell import Bell
from worker.delivery.broker import ConsumerOutages, build_broker, ping
from worker.endpoints.secretbox import SecretBox, open_secret_box
from worker.engine.engine import DeliveryEngine
from worker.engine.loop import SendingLoop
from worker.errors import ConfigurationError, DatabaseUnavailable
from worker.fanout.poller import Dispatch, Poller
from worker.fanout.wakeup import Listener, Wakeup, wake_on_commit
from worker.http.aio import AioSender
from worker.http.sender import AsyncSender, HttpxSender, Limits
from worker.http.transport import Guard
from worker.settings import Settings
from worker.telemetry.metrics import NO_METRICS, Metrics
from worker.telemetry.tracing import NO_TRACING, Tracing

log = structlog.get_logger(__name__)

WORKER_IDLE_MS = 1000
"""dramatiq's ``worker_timeout``, in milliseconds: how often an idle consumer fetches
without being woken (the doorbell of ``worker.delivery.broker`` wakes it at once when a
message is rung; this only bounds what a lost wake-up costs) and idle worker threads look
at their stop flag."""


def open_database(settings: Settings) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory for ``settings.database_url``."""
    engine = make_engine(
        settings.database_url,
        schema=settings.db_schema,
        connect_timeout=settings.database_connect_timeout,
        statement_timeout=settings.database_statement_timeout,
    )
    return engine, make_session_factory(engine)


def ensure_schema(engine: Engine, *, migrate: bool) -> None:
    """Migrate (embedded) or insist the schema is current (PostgreSQL: ``db upgrade``
    is the release step, so two processes never race to migrate)."""
    if migrate:
        upgrade(engine)
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise ConfigurationError(
            f"database schema is at {current or 'nothing'}, this code needs {head}: "
            "run `catentio-webhooks db upgrade` first"
        )


@dataclass
class Runtime:
    """Everything one process needs to publish, poll and deliver."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    box: SecretBox
    loop: SendingLoop
    sender: AsyncSender
    broker: dramatiq.Broker
    actor: DeliverActor
    deliverer: DeliveryEngine
    bell: Bell
    database: Availability
    broker_state: Availability
    clock: Clock = utcnow
    metrics: Metrics = NO_METRICS
    tracing: Tracing = NO_TRACING
    # The LISTEN connection's thread while the poller runs on PostgreSQL (else None).
    listener: Listener | None = None
    _workers: list[dramatiq.Worker] = field(default_factory=list)
    _consumer_outages: ConsumerOutages | None = None

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | Guard | None = None,
        clock: Clock = utcnow,
        migrate: bool | None = None,
        startup_timeout: float | None = None,
        metrics: Metrics = NO_METRICS,
        tracing: Tracing = NO_TRACING,
    ) -> Runtime:
        """Build the runtime. ``migrate`` defaults to True on SQLite, False otherwise.

        With ``startup_timeout`` (the long-running processes), wait that long at most
        for the database, its schema and Redis, and check that the encryption keys open
        the stored secrets (``worker.startup``); without it, a schema that is not current
        is refused at once.

        ``transport``: where the requests go. By default aiohttp behind the SSRF guard of
        ``settings.allowed_networks``; a :class:`~worker.http.transport.Guard` replaces
        the guard (its resolver too); an httpx transport (``httpx.MockTransport`` in
        tests) is sent through with ``httpx.AsyncClient`` instead.
        """
        # The key first: refusing to start (PostgreSQL without a key) must not leave an
        # engine behind.
        box = open_secret_box(settings.encryption_keys, settings.database_url)
        engine, sessions = open_database(settings)
        migrating = is_sqlite(settings.database_url) if migrate is None else migrate
        try:
            if startup_timeout is None:
                ensure_schema(engine, migrate=migrating)
            else:
                if migrating:
                    startup.wait_for(
                        "database",
                        startup.database_answers(engine),
                        timeout=startup_timeout,
                        failure=DatabaseUnavailable,
                    )
                    upgrade(engine)
                startup.check_database(engine, sessions, box, timeout=startup_timeout)
        except BaseException:
            engine.dispose()
            raise
        tracing.instrument_engine(engine)
        loop = SendingLoop()
        sender = sender_for(settings, transport)
        database = Availability("database", probe=startup.database_answers(engine))
        deliverer = DeliveryEngine(
            session_factory=sessions,
            sender=sender,
            loop=loop,
            box=box,
            settings=settings,
            clock=clock,
            metrics=metrics,
            tracing=tracing,
            database=database,
        )
        broker = build_broker(settings)
        if startup_timeout is not None and settings.redis_url:
            try:
                startup.check_broker(broker, timeout=startup_timeout)
            except BaseException:
                broker.close()
                _close_sending(loop, sender)
                engine.dispose()
                raise
        broker_state = Availability("broker", probe=lambda: ping(broker))
        carrier = tracing.middleware()
        if carrier is not None:  # after LogContext: it ends its span before the ids are cleared
            broker.add_middleware(carrier)
        actor = declare_deliver_actor(
            broker,
            deliverer,
            settings,
            database=database,
            broker_state=broker_state,
            metrics=metrics,
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            box=box,
            loop=loop,
            sender=sender,
            broker=broker,
            actor=actor,
            deliverer=deliverer,
            bell=Bell(broker, queue_name=settings.queue_name),
            database=database,
            broker_state=broker_state,
            clock=clock,
            metrics=metrics,
            tracing=tracing,
        )

    @property
    def dispatch(self) -> Dispatch:
        """Rings this runtime's actor (the poller's and the replays' way in)."""
        return self.bell.ring

    def poller(self) -> Poller:
        """A poller that dispatches to this runtime's actor."""
        return Poller(
            session_factory=self.sessions,
            dispatch=self.dispatch,
            waiting=self.bell.waiting,
            batch_size=self.settings.poll_batch_size,
            sweep_after=self.settings.sweep_after,
            clock=self.clock,
            retention=self.settings.retention,
            database=self.database,
            broker=self.broker_state,
            metrics=self.metrics,
            tracing=self.tracing,
        )

    def run_poller(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set, woken early by commits that publish: through
        ``LISTEN`` on PostgreSQL (unless ``settings.listen`` is off), and in-process when
        this process publishes itself (the embedded mode)."""
        wakeup = Wakeup()
        wake_on_commit(self.engine, wakeup)
        listener = None
        if self.engine.dialect.name == "postgresql" and self.settings.listen:
            listener = self.listener = Listener(self.engine, wakeup).start()
        try:
            self.poller().run(
                stop,
                interval=self.settings.poll_interval,
                sweep_interval=self.settings.sweep_interval,
                wakeup=wakeup,
            )
        finally:
            if listener is not None:
                listener.stop()
                self.listener = None

    def start_worker(self, threads: int | None = None) -> dramatiq.Worker:
        """Start dramatiq worker threads consuming this runtime's queue."""
        worker = dramatiq.Worker(
            self.broker,
            queues={self.settings.queue_name},
            worker_threads=threads or self.settings.worker_threads,
            # Idle consumers block on the queue (in-process) or its doorbell (Redis)
            # and are woken by a rung message; this is only their fallback.
            worker_timeout=WORKER_IDLE_MS,
        )
        if self._consumer_outages is None and self.settings.redis_url:
            self._consumer_outages = ConsumerOutages(self.broker_state)
            self._consumer_outages.install([self.settings.queue_name])
        worker.start()
        self._workers.append(worker)
        return worker

    def close(self) -> None:
        """Stop workers, let what is in flight be recorded, close the broker, the
        sending loop and the engine, and flush the traces (the runtime owns the tracing
        it was given)."""
        self.database.close()
        self.broker_state.close()
        for worker in self._workers:
            worker.stop(timeout=int(self.settings.lease_duration.total_seconds() * 1000))
        self._workers.clear()
        self.deliverer.close(timeout=self.settings.request_timeout + 1)
        if self._consumer_outages is not None:
            self._consumer_outages.uninstall([self.settings.queue_name])
            self._consumer_outages = None
        self.broker.close()
        _close_sending(self.loop, self.sender)
        self.engine.dispose()
        self.tracing.shutdown()

    @contextmanager
    def running(self, *, threads: int | None = None) -> Iterator[threading.Event]:
        """Worker threads and a poller thread until the block exits (embedded mode)."""
        stop = threading.Event()
        self.start_worker(threads)
        thread = threading.Thread(
            target=self.run_poller, args=(stop,), name="catentio-poller", daemon=True
        )
        thread.start()
        try:
            yield stop
        finally:
            stop.set()
            thread.join(timeout=10)


def sender_for(
    settings: Settings, transport: httpx.AsyncBaseTransport | Guard | None
) -> AsyncSender:
    """The sending loop's sender (see :meth:`Runtime.open`)."""
    limits = Limits(
        timeout=settings.request_timeout,
        connect_timeout=settings.connect_timeout,
        max_response_bytes=settings.max_response_bytes,
        max_header_bytes=settings.max_header_bytes,
    )
    if transport is None:
        return AioSender(Guard(allowed_networks=settings.allowed_networks), limits)
    if isinstance(transport, Guard):
        return AioSender(transport, limits)
    return HttpxSender(transport, limits)


def _close_sending(loop: SendingLoop, sender: AsyncSender) -> None:
    try:
        loop.call(sender.aclose(), timeout=5)
    finally:
        loop.close()
