"""The dramatiq broker, built from settings (never at import time).

``REDIS_URL`` set: a ``RedisBroker``, shared by every poller and worker process.
Otherwise: an in-process broker whose worker threads run in the same process as the
poller (the embedded default). Losing its queue on exit loses nothing: the rows are the
truth and the sweeper rings again for anything due.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import default_middleware

from worker.delivery.middleware import LogContext
from worker.settings import Settings


class InProcessBroker(StubBroker):
    """dramatiq's in-memory broker, used for real in embedded mode: messages live in
    this process's queues and are processed by this process's worker threads."""

    def __init__(self) -> None:
        super().__init__(middleware=[m() for m in default_middleware], fail_fast_default=False)


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A new broker for ``settings``, with our middleware added."""
    broker: dramatiq.Broker
    if settings.redis_url:
        broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=settings.redis_url, namespace=settings.redis_namespace
        )
    else:
        broker = InProcessBroker()
    broker.add_middleware(LogContext())
    return broker
