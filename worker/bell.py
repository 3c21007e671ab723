"""Ringing the delivery actor: the poller's ``dispatch`` and the command line's replays.

A message only says "look at delivery X now"; the row decides whether anything is sent.
The runtime rings its own broker (Redis, or the in-process one). The command line, which
runs no workers, enqueues on the same Redis queue the workers consume when ``REDIS_URL``
is set.
Without it the broker lives inside the ``run`` process and cannot be reached from
outside: the rows wait until that process's sweeper rings them.
"""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from outbox.errors import BrokerUnavailable
from worker.actors import DELIVER
from worker.broker import build_broker
from worker.settings import Settings

RING_BATCH = 100
"""Delivery ids per message: one claim transaction's worth."""


class Bell:
    """Enqueues ``deliver(delivery_id)`` messages for workers in other processes."""

    def __init__(self, broker: dramatiq.Broker, *, queue_name: str) -> None:
        self._broker = broker
        self._queue_name = queue_name

    @classmethod
    def for_settings(cls, settings: Settings) -> Bell | None:
        """A bell on the shared Redis broker, or ``None`` in embedded mode (no broker
        another process could reach)."""
        if not settings.redis_url:
            return None
        return cls(build_broker(settings), queue_name=settings.queue_name)

    def ring(self, delivery_ids: Sequence[str]) -> None:
        """Ask the workers to look at these deliveries now.

        Raises :class:`~outbox.errors.BrokerUnavailable` if the broker cannot be reached;
        the rows stay pending and the poller's sweeper rings them later.
        """
        try:
            for start in range(0, len(delivery_ids), RING_BATCH):
                self._broker.enqueue(
                    dramatiq.Message(
                        queue_name=self._queue_name,
                        actor_name=DELIVER,
                        args=(list(delivery_ids[start : start + RING_BATCH]),),
                        kwargs={},
                        options={},
                    )
                )
        except Exception as exc:
            raise BrokerUnavailable(f"cannot enqueue deliveries: {exc!r}") from exc

    def waiting(self) -> int | None:
        """Messages waiting in the queue, not yet fetched by any worker (``None`` if this
        broker cannot tell). The sweeper does not re-ring what may still be queued."""
        try:
            if isinstance(self._broker, RedisBroker):
                key = f"{self._broker.namespace}:{self._queue_name}"
                return int(self._broker.client.llen(key))
            if isinstance(self._broker, StubBroker):
                queue = self._broker.queues.get(self._queue_name)
                return queue.qsize() if queue is not None else 0
        except Exception as exc:
            raise BrokerUnavailable(f"cannot read the queue's length: {exc!r}") from exc
        return None

    def close(self) -> None:
        """Close the broker's connections."""
        self._broker.close()
