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
from dataclasses import dataclass
from enum import StrEnum

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from worker.delivery.actor import DELIVER
from worker.delivery.broker import build_broker
from worker.errors import BrokerUnavailable
from worker.settings import Settings

RING_BATCH = 100
"""Delivery ids per message: about one claim transaction's worth."""


class Bell:
    """Enqueues ``deliver(*delivery_ids)`` messages, up to ``RING_BATCH`` ids each."""

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
                        args=tuple(delivery_ids[start : start + RING_BATCH]),
                        kwargs={},
                        options={},
                    )
                )
        except Exception as exc:
            raise BrokerUnavailable(f"cannot enqueue deliveries: {exc!r}") from exc

    def waiting(self) -> int | None:
        """Messages waiting in the queue, not yet fetched by any worker (``None``: this
        broker cannot tell). The sweeper does not re-ring what may still be queued.

        Raises :class:`~outbox.errors.BrokerUnavailable` if the broker cannot be reached.
        """
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


class Reach(StrEnum):
    """Where a ring went."""

    NOTHING = "nothing"
    """There was nothing to ring for."""
    WORKERS = "workers"
    """The broker the workers consume took the messages."""
    EMBEDDED = "embedded"
    """No broker another process can reach (no ``REDIS_URL``): the ``run`` process's
    sweeper picks the deliveries up."""
    UNREACHABLE = "unreachable"
    """The broker could not be reached; the sweeper rings once it is back."""


@dataclass(frozen=True)
class Ringing:
    """What ringing did. ``rung``: the workers were asked to look now. Either way the
    rows are pending, and within ``Settings.sweep_delay`` the sweeper rings them."""

    reach: Reach
    rung: bool
    error: str | None = None


def ring_now(settings: Settings, delivery_ids: Sequence[str]) -> Ringing:
    """Ring the workers for ``delivery_ids`` from a process that runs none (the command
    line, the API); never raises for an unreachable broker."""
    if not delivery_ids:
        return Ringing(Reach.NOTHING, rung=False)
    bell = Bell.for_settings(settings)
    if bell is None:
        return Ringing(Reach.EMBEDDED, rung=False)
    try:
        bell.ring(delivery_ids)
    except BrokerUnavailable as exc:
        return Ringing(Reach.UNREACHABLE, rung=False, error=str(exc))
    finally:
        bell.close()
    return Ringing(Reach.WORKERS, rung=True)
