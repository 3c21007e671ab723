"""The dramatiq broker, built from settings (never at import time).

``REDIS_URL`` set: a ``RedisBroker``, shared by every poller and worker process, whose
connections time out instead of hanging on a Redis that accepts TCP and never answers.
Otherwise: an in-process broker whose worker threads run in the same process as the
poller (the embedded default). Losing its queue on exit loses nothing: the rows are the
truth and the sweeper rings again for anything due.
"""

from __future__ import annotations

import logging

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import default_middleware

from worker.availability import Availability
from worker.delivery.middleware import LogContext
from worker.settings import Settings

REDIS_TIMEOUT = 5.0
"""Seconds a Redis connect or command may take before it counts as a broker failure."""


class InProcessBroker(StubBroker):
    """dramatiq's in-memory broker, used for real in embedded mode: messages live in
    this process's queues and are processed by this process's worker threads."""

    def __init__(self) -> None:
        super().__init__(middleware=[m() for m in default_middleware], fail_fast_default=False)


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A new broker for ``settings``, with our middleware added."""
    broker: dramatiq.Broker
    if settings.redis_url:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
        )
        broker = RedisBroker(  # type: ignore[no-untyped-call]
            client=client, namespace=settings.redis_namespace
        )
    else:
        broker = InProcessBroker()
    broker.add_middleware(LogContext())
    return broker


def ping(broker: dramatiq.Broker) -> None:
    """Raise unless the broker answers (the in-process one always does)."""
    client = getattr(broker, "client", None)
    if isinstance(client, redis.Redis):
        client.ping()


class ConsumerOutages(logging.Filter):
    """Turns dramatiq's consumer connection errors into one broker state change.

    While Redis is away, each dramatiq consumer thread logs a CRITICAL "connection
    error" and a "restarting" line every few seconds, for ever. This filter, on those
    threads' loggers, drops them and reports the first to ``broker`` (which logs
    ``broker.unavailable`` once and ``broker.recovered`` when its probe answers).
    """

    def __init__(self, broker: Availability) -> None:
        super().__init__("catentio-consumer-outages")
        self._broker = broker

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Consumer encountered a connection error"):
            self._broker.failed(ConnectionError(message.partition(": ")[2] or message))
            return False
        return not message.startswith("Restarting consumer")

    def install(self, queue_names: list[str]) -> None:
        """Attach to the consumer thread loggers of these queues (and their delay
        queues)."""
        for queue_name in queue_names:
            for name in (queue_name, f"{queue_name}.DQ"):
                logging.getLogger(f"dramatiq.worker.ConsumerThread({name})").addFilter(self)

    def uninstall(self, queue_names: list[str]) -> None:
        """Detach again (the runtime is closing)."""
        for queue_name in queue_names:
            for name in (queue_name, f"{queue_name}.DQ"):
                logging.getLogger(f"dramatiq.worker.ConsumerThread({name})").removeFilter(self)
