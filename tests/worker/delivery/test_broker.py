"""The broker is chosen from settings; a dead broker loses nothing."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import select

from outbox import Delivery, DeliveryStatus, publish
from worker.delivery.broker import InProcessBroker, build_broker
from worker.errors import BrokerUnavailable
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


def test_the_bell_counts_the_messages_waiting_in_redis(
    redis_server: str, redis_namespace: str
) -> None:
    """``waiting`` is the messages the workers have not fetched yet, each ringing up to
    100 deliveries; a dead Redis is BrokerUnavailable (the sweeper then behaves as
    without it)."""
    from worker.delivery.bell import Bell

    settings = Settings(redis_url=redis_server, redis_namespace=redis_namespace)
    broker = build_broker(settings)
    bell = Bell(broker, queue_name=settings.queue_name)
    try:
        broker.declare_queue(settings.queue_name)
        assert bell.waiting() == 0
        bell.ring([f"dlv_{i}" for i in range(250)])
        assert bell.waiting() == 3
        key = f"{redis_namespace}:{settings.queue_name}"
        sizes = sorted(
            len(dramatiq.Message.decode(broker.client.hget(f"{key}.msgs", m)).args)
            for m in broker.client.lrange(key, 0, -1)
        )
        assert sizes == [50, 100, 100]
    finally:
        broker.close()
    dead = Bell(
        build_broker(Settings(redis_url="redis://127.0.0.1:1/0", redis_namespace=redis_namespace)),
        queue_name=settings.queue_name,
    )
    with pytest.raises(BrokerUnavailable):
        dead.waiting()
    dead.close()


def test_the_in_process_bell_counts_its_queue() -> None:
    from worker.delivery.bell import Bell

    settings = Settings()
    broker = build_broker(settings)
    try:
        bell = Bell(broker, queue_name=settings.queue_name)
        assert bell.waiting() == 0
        broker.declare_queue(settings.queue_name)
        bell.ring([f"dlv_{i}" for i in range(101)])
        assert bell.waiting() == 2
    finally:
        broker.close()
