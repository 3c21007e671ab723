"""Wiring: the database, secret box, sending loop, delivery engine, broker and actor of
one process.

``Runtime.open(settings)`` builds everything from settings, in that order, with the
edges (HTTP transport, clock) injectable for tests. The command line, the embedded
runner and the demo all start from here, so they run the same code paths.
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
from outbox.errors import ConfigurationError
from outbox.migrate import current_revision, head_revision, upgrade
from outbox.poller import Dispatch, Poller
from worker.actors import DeliverActor, declare_deliver_actor
from worker.bell import Bell
from worker.broker import build_broker
from worker.engine.engine import DeliveryEngine
from worker.engine.keys import KeyCache
from worker.engine.loop import SendingLoop
from worker.engine.send import AsyncSender, sender_for
from worker.secretbox import SecretBox, open_secret_box
from worker.settings import Settings

log = structlog.get_logger("worker.runtime")


def open_database(settings: Settings) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory for ``settings.database_url``."""
    engine = make_engine(settings.database_url)
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
    hot_engine: Engine
    clock: Clock = utcnow
    _workers: list[dramatiq.Worker] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        clock: Clock = utcnow,
        migrate: bool | None = None,
    ) -> Runtime:
        """Build the runtime. ``migrate`` defaults to True on SQLite, False otherwise."""
        # The key first: refusing to start (PostgreSQL without a key) must not leave an
        # engine behind.
        box = open_secret_box(settings.encryption_keys, settings.database_url)
        engine, sessions = open_database(settings)
        try:
            ensure_schema(
                engine, migrate=is_sqlite(settings.database_url) if migrate is None else migrate
            )
        except BaseException:
            engine.dispose()
            raise
        # The hot path (claims, records) skips pool_pre_ping's round trip per
        # transaction and retries once on a dropped connection instead. SQLite: the
        # same engine (an in-memory database exists once per engine).
        hot_engine = (
            engine
            if is_sqlite(settings.database_url)
            else make_engine(settings.database_url, pool_pre_ping=False)
        )
        loop = SendingLoop()
        sender = sender_for(settings, transport)
        deliverer = DeliveryEngine(
            engine=hot_engine,
            sender=sender,
            loop=loop,
            keys=KeyCache(box),
            settings=settings,
            clock=clock,
        )
        broker = build_broker(settings)
        actor = declare_deliver_actor(broker, deliverer, settings)
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
            hot_engine=hot_engine,
            clock=clock,
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
        )

    def start_worker(self, threads: int | None = None) -> dramatiq.Worker:
        """Start dramatiq worker threads consuming this runtime's queue."""
        worker = dramatiq.Worker(
            self.broker,
            queues={self.settings.queue_name},
            worker_threads=threads or self.settings.worker_threads,
            worker_timeout=100,
        )
        worker.start()
        self._workers.append(worker)
        return worker

    def close(self) -> None:
        """Stop workers, close the broker, the HTTP client and the engine."""
        for worker in self._workers:
            worker.stop(timeout=int(self.settings.lease_duration.total_seconds() * 1000))
        self._workers.clear()
        self.deliverer.close(timeout=self.settings.request_timeout + 1)
        self.broker.close()
        try:
            self.loop.call(self.sender.aclose(), timeout=5)
        finally:
            self.loop.close()
        if self.hot_engine is not self.engine:
            self.hot_engine.dispose()
        self.engine.dispose()

    @contextmanager
    def running(self, *, threads: int | None = None) -> Iterator[threading.Event]:
        """Worker threads and a poller thread until the block exits (embedded mode)."""
        stop = threading.Event()
        self.start_worker(threads)
        poller = self.poller()
        thread = threading.Thread(
            target=poller.run,
            args=(stop,),
            kwargs={
                "interval": self.settings.poll_interval,
                "sweep_interval": self.settings.sweep_interval,
            },
            name="catentio-poller",
            daemon=True,
        )
        thread.start()
        try:
            yield stop
        finally:
            stop.set()
            thread.join(timeout=10)
