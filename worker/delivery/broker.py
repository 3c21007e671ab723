"""The dramatiq broker, built from settings (never at import time).

``REDIS_URL`` set: a :class:`WakingRedisBroker`, shared by every poller and worker
process, whose connections time out instead of hanging on a Redis that accepts TCP and
never answers. Otherwise: an in-process broker whose worker threads run in the same
process as the poller (the embedded default). Losing its queue on exit loses nothing: the
rows are the truth and the sweeper rings again for anything due.

An idle dramatiq consumer polls its queue; at a low rate that polling is most of a
worker's CPU, and its interval is the wait of a message rung into an idle queue. So
every enqueue also pushes a wake-up onto the queue's *doorbell* (a short Redis list), and
an idle consumer blocks on it (``BLPOP``) instead of sleeping: it fetches at once when
rung, and otherwise only every ``worker_timeout`` (a lost wake-up costs that long, never
the message). Fetching and acknowledging stay dramatiq's own (at-least-once, the delay
queue, the dead-letter queue); the doorbell only says when to fetch.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import dramatiq
import redis
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import default_middleware

from worker.availability import Availability
from worker.delivery.middleware import LogContext
from worker.settings import Settings

REDIS_TIMEOUT = 5.0
"""Seconds a Redis connect or command may take before it counts as a broker failure."""


DOORBELL_WAKE_UPS = 64
"""Wake-ups a queue's doorbell holds at most: enough to wake every idle consumer for a
burst, few enough that the stale ones left after a busy spell (consumers that fetched
without needing them) cost only a few empty fetches."""

DELAY_QUEUE_TICK_MS = 100
"""Longest a delay queue's consumer waits before dramatiq moves its held messages whose
time has come to the queue: how late a retry may start, at most."""

MAX_BLOCK = REDIS_TIMEOUT - 1.0
"""Longest ``BLPOP`` on a doorbell, in seconds: inside the connection's read timeout."""


def is_delay_queue(queue_name: str) -> bool:
    """Whether ``queue_name`` is dramatiq's delay queue of another queue."""
    return queue_name.endswith(".DQ")


class InProcessBroker(StubBroker):
    """dramatiq's in-memory broker, used for real in embedded mode: messages live in
    this process's queues and are processed by this process's worker threads.

    Its consumers block on the in-memory queue, so a long ``worker_timeout`` costs no
    latency, except on a delay queue, whose held messages move on only between two
    waits: that one waits ``DELAY_QUEUE_TICK_MS`` at most."""

    def __init__(self) -> None:
        super().__init__(middleware=[m() for m in default_middleware], fail_fast_default=False)

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 100) -> Consumer:
        if is_delay_queue(queue_name):
            timeout = min(timeout, DELAY_QUEUE_TICK_MS)
        return super().consume(queue_name, prefetch, timeout)


class WakingRedisBroker(RedisBroker):
    """dramatiq's Redis broker with a doorbell per queue: every enqueue wakes one idle
    consumer (see the module's docstring)."""

    def doorbell(self, queue_name: str) -> str:
        """The Redis key of ``queue_name``'s doorbell."""
        return f"{self.namespace}:{queue_name}.bell"

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return WakingConsumer

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> Any:
        enqueued = super().enqueue(message, delay=delay)
        self.wake(enqueued.queue_name)
        return enqueued

    def wake(self, queue_name: str, wake_ups: int = 1) -> None:
        """Push ``wake_ups`` onto ``queue_name``'s doorbell (one round trip; the doorbell
        keeps ``DOORBELL_WAKE_UPS`` at most)."""
        key = self.doorbell(queue_name)
        pipeline = self.client.pipeline(transaction=False)
        pipeline.lpush(key, *["1"] * wake_ups)
        pipeline.ltrim(key, 0, DOORBELL_WAKE_UPS - 1)
        pipeline.execute()

    def close(self) -> None:
        """Close the client's connections too (dramatiq's broker leaves them open)."""
        super().close()
        self.client.close()


class WakingConsumer(_RedisConsumer):
    """A Redis consumer that, with nothing to fetch, blocks on its queue's doorbell.

    With every prefetched message still being processed, it waits for one to be
    acknowledged (instead of polling its own count). Without a wake-up it fetches
    every ``timeout`` milliseconds anyway; a delay queue's consumer returns every
    ``DELAY_QUEUE_TICK_MS`` so that its held messages move on in time.
    """

    broker: WakingRedisBroker

    def __init__(self, broker: WakingRedisBroker, queue_name: str, prefetch: int, timeout: int):
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        self._doorbell = broker.doorbell(queue_name)
        self._fetch_every = timeout / 1000
        self._wait = min(self._fetch_every, MAX_BLOCK)
        if is_delay_queue(queue_name):
            self._wait = min(self._wait, DELAY_QUEUE_TICK_MS / 1000)
        self._next_fetch = 0.0  # monotonic; 0: fetch now
        self._freed = threading.Event()

    def ack(self, message: MessageProxy) -> None:
        try:
            super().ack(message)  # type: ignore[no-untyped-call]
        finally:
            self._freed.set()

    def nack(self, message: MessageProxy) -> None:
        try:
            super().nack(message)  # type: ignore[no-untyped-call]
        finally:
            self._freed.set()

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:  # dramatiq's own consumer skips these too
                        continue
                    message = dramatiq.Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                self._freed.clear()  # before counting: an ack from now on wakes the wait
                room = self.prefetch - self.outstanding_message_count
                if room <= 0:
                    self._freed.wait(self._wait)
                    return None
                now = time.monotonic()
                if now >= self._next_fetch:
                    self.message_cache = self.broker.do_fetch(self.queue_name, room)
                    if len(self.message_cache) >= room:
                        continue  # there may be more: fetch again once these are handed on
                    # Fewer than asked for: the queue is empty now, and whatever comes
                    # next rings the doorbell.
                    self._next_fetch = now + self._fetch_every
                    if self.message_cache:
                        continue
                if self.broker.client.blpop([self._doorbell], timeout=self._wait) is not None:
                    self._next_fetch = 0.0
                return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A new broker for ``settings``, with our middleware added."""
    broker: dramatiq.Broker
    if settings.redis_url:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
        )
        broker = WakingRedisBroker(  # type: ignore[no-untyped-call]
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
