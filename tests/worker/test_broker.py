"""The broker is chosen from settings; a dead broker loses nothing."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import select

from outbox import Delivery, DeliveryStatus, publish
from outbox.errors import BrokerUnavailable
from worker.broker import InProcessBroker, build_broker
from worker.settings import Settings


def test_in_process_broker_without_redis_url() -> None:
    """No REDIS_URL: the embedded in-process broker."""
    broker = build_broker(Settings())
    try:
        assert isinstance(broker, InProcessBroker)
    finally:
        broker.close()


def test_redis_broker_with_redis_url(redis_server: str, redis_namespace: str) -> None:
    """REDIS_URL set: a RedisBroker in our namespace."""
    broker = build_broker(Settings(redis_url=redis_server, redis_namespace=redis_namespace))
    try:
        assert isinstance(broker, RedisBroker)
        assert broker.namespace == redis_namespace
    finally:
        broker.close()


def test_dead_broker_keeps_deliveries_pending_until_the_sweeper_rings(
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Any,
) -> None:
    """With Redis unreachable, dispatch raises BrokerUnavailable but the poller commits
    the deliveries; once a live broker is there, the sweeper rings and they succeed."""
    dead = make_runtime(
        postgres_url, redis_url="redis://127.0.0.1:1/0", redis_namespace=redis_namespace
    )
    add_endpoint(dead, receiver=receiver, path="/hook")
    with dead.sessions() as session, session.begin():
        publish(session, workspace_id="ws_a", type="run.succeeded", data={})
    with pytest.raises(BrokerUnavailable):
        dead.dispatch(["dlv_x"])
    assert dead.poller().poll_once().deliveries == 1  # committed despite the dead broker
    with dead.sessions() as session:
        assert session.scalars(select(Delivery.status)).one() == DeliveryStatus.PENDING

    live = make_runtime(
        postgres_url,
        redis_url=redis_server,
        redis_namespace=redis_namespace,
        sweep_after=timedelta(seconds=0),
    )
    live.start_worker(2)
    assert live.poller().sweep_once() == 1
    assert receiver.wait_for(1, path="/hook", timeout=15)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        with live.sessions() as session:
            if session.scalars(select(Delivery.status)).one() == DeliveryStatus.SUCCEEDED:
                break
        time.sleep(0.05)
    with live.sessions() as session:
        assert session.scalars(select(Delivery.status)).one() == DeliveryStatus.SUCCEEDED


def test_the_bell_rings_a_batch_per_message_and_counts_what_waits(
    redis_server: str, redis_namespace: str
) -> None:
    """250 deliveries are three messages (100 ids each at most), and ``waiting`` sees
    the three in Redis until a worker fetches them; a dead Redis is BrokerUnavailable."""
    from worker.bell import Bell

    settings = Settings(redis_url=redis_server, redis_namespace=redis_namespace)
    broker = build_broker(settings)
    bell = Bell(broker, queue_name=settings.queue_name)
    try:
        broker.declare_queue(settings.queue_name)
        assert bell.waiting() == 0
        bell.ring([f"dlv_{i}" for i in range(250)])
        assert bell.waiting() == 3
        sizes = []
        for _ in range(3):
            (message,) = broker.client.lrange(f"{redis_namespace}:{settings.queue_name}", 0, 0)
            raw = broker.client.hget(f"{redis_namespace}:{settings.queue_name}.msgs", message)
            import dramatiq

            sizes.append(len(dramatiq.Message.decode(raw).args[0]))
            broker.client.lpop(f"{redis_namespace}:{settings.queue_name}")
        assert sorted(sizes) == [50, 100, 100]
    finally:
        broker.close()
    dead = Bell(
        build_broker(Settings(redis_url="redis://127.0.0.1:1/0", redis_namespace=redis_namespace)),
        queue_name=settings.queue_name,
    )
    with pytest.raises(BrokerUnavailable):
        dead.waiting()
    dead.close()
