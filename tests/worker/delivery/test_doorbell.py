"""Idle consumers wait on a doorbell, not a short poll: a rung message is fetched at once,
a lost wake-up still gets it fetched (late), a full prefetch refills on acknowledgement."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

from worker.delivery.broker import (
    DOORBELL_WAKE_UPS,
    InProcessBroker,
    WakingRedisBroker,
    build_broker,
)
from worker.settings import Settings

LONG_TIMEOUT_MS = 4000
"""A ``worker_timeout`` far longer than any latency these tests accept: only a wake-up
can explain a prompt fetch."""

IDLE = 1.5
"""Seconds a worker sits idle before a test rings it (a polling consumer would have
backed off to a long sleep by then)."""


class Seen:
    """What an actor processed, and when (monotonic)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._changed = threading.Condition()

    def add(self, name: str) -> None:
        with self._changed:
            self.at[name] = time.monotonic()
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.at) >= count, timeout)


@pytest.fixture
def start_worker() -> Iterator[Callable[..., dramatiq.Worker]]:
    """Builder: a started dramatiq worker on ``broker``; stopped afterwards."""
    started: list[tuple[dramatiq.Broker, dramatiq.Worker]] = []

    def start(broker: dramatiq.Broker, *, threads: int = 2, timeout: int = LONG_TIMEOUT_MS) -> Any:
        worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=timeout)
        worker.start()
        started.append((broker, worker))
        return worker

    yield start
    for broker, worker in started:
        worker.stop(timeout=10_000)
        broker.close()


def waking_broker(redis_server: str, namespace: str) -> WakingRedisBroker:
    broker = build_broker(Settings(redis_url=redis_server, redis_namespace=namespace))
    assert isinstance(broker, WakingRedisBroker)
    return broker


def declare(broker: dramatiq.Broker, seen: Seen, *, pause: float = 0.0) -> Any:
    def noted(name: str) -> None:
        time.sleep(pause)
        seen.add(name)

    return dramatiq.actor(broker=broker, actor_name="noted", queue_name="bells")(noted)


def test_an_idle_worker_fetches_a_rung_message_at_once(
    redis_server: str, redis_namespace: str, start_worker: Callable[..., Any]
) -> None:
    """Given a worker idle for a while with a 4 s fallback, when a message is sent, then
    it is processed within a fraction of that (the doorbell woke the consumer)."""
    broker = waking_broker(redis_server, redis_namespace)
    seen = Seen()
    actor = declare(broker, seen)
    start_worker(broker)
    time.sleep(IDLE)
    for round_ in range(3):
        sent = time.monotonic()
        actor.send(f"m{round_}")
        assert seen.wait_for(round_ + 1, timeout=10)
        assert seen.at[f"m{round_}"] - sent < 0.5
        time.sleep(0.3)


def test_a_lost_wake_up_still_gets_the_message_fetched(
    redis_server: str, redis_namespace: str, start_worker: Callable[..., Any]
) -> None:
    """Given a message enqueued without its wake-up (a ring that was lost), the idle
    consumer still fetches it, within its fallback ``worker_timeout``."""
    broker = waking_broker(redis_server, redis_namespace)
    seen = Seen()
    actor = declare(broker, seen)
    start_worker(broker, timeout=500)
    time.sleep(IDLE)
    message = actor.message("lost")
    RedisBroker.enqueue(broker, message)  # dramatiq's own enqueue: no wake-up
    assert broker.client.llen(broker.doorbell("bells")) == 0
    assert seen.wait_for(1, timeout=5)


def test_a_full_prefetch_refills_when_a_message_is_acknowledged(
    redis_server: str, redis_namespace: str, start_worker: Callable[..., Any]
) -> None:
    """Given one thread (prefetch 2) and eight queued 50 ms messages, when the worker
    starts, they are all done in well under one fallback per refill."""
    broker = waking_broker(redis_server, redis_namespace)
    seen = Seen()
    actor = declare(broker, seen, pause=0.05)
    broker.declare_queue("bells")
    for i in range(8):
        actor.send(f"m{i}")
    broker.client.delete(broker.doorbell("bells"))  # only the acknowledgements may help
    started = time.monotonic()
    start_worker(broker, threads=1)
    assert seen.wait_for(8, timeout=30)
    assert time.monotonic() - started < 3.0


def test_a_delayed_message_is_not_held_for_the_fallback(
    redis_server: str, redis_namespace: str, start_worker: Callable[..., Any]
) -> None:
    """Given an idle worker with a 4 s fallback, a message sent with a 300 ms delay is
    processed after its delay and well before the fallback."""
    broker = waking_broker(redis_server, redis_namespace)
    seen = Seen()
    actor = declare(broker, seen)
    start_worker(broker)
    time.sleep(IDLE)
    sent = time.monotonic()
    actor.send_with_options(args=("later",), delay=300)
    assert seen.wait_for(1, timeout=10)
    assert 0.3 <= seen.at["later"] - sent < 1.5


def test_the_doorbell_stays_short_without_consumers(
    redis_server: str, redis_namespace: str
) -> None:
    """Rung with no consumer at all, the doorbell keeps a bounded number of wake-ups
    (the messages themselves all wait in the queue)."""
    broker = waking_broker(redis_server, redis_namespace)
    try:
        actor = declare(broker, Seen())
        for i in range(DOORBELL_WAKE_UPS + 40):
            actor.send(f"m{i}")
        assert broker.client.llen(broker.doorbell("bells")) == DOORBELL_WAKE_UPS
        assert broker.client.llen(f"{redis_namespace}:bells") == DOORBELL_WAKE_UPS + 40
    finally:
        broker.close()


def test_the_in_process_broker_moves_delayed_messages_on_in_time(
    start_worker: Callable[..., Any],
) -> None:
    """Embedded: with a 4 s fallback, a message delayed by 300 ms is not held for it
    (the in-process delay queue's consumer returns every tick)."""
    broker = InProcessBroker()
    seen = Seen()
    actor = declare(broker, seen)
    start_worker(broker)
    time.sleep(IDLE)
    sent = time.monotonic()
    actor.send_with_options(args=("later",), delay=300)
    assert seen.wait_for(1, timeout=10)
    assert 0.3 <= seen.at["later"] - sent < 1.5
