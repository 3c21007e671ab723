"""End to end: producer transaction → poller → dramatiq workers → a real receiver.

Runs in both modes: embedded (SQLite, in-process broker) and distributed (PostgreSQL,
Redis, a real dramatiq ``Worker``), against a real HTTP server on loopback that verifies
every request with ``catentio_signing``.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select

from catentio_signing import Webhook
from outbox import Attempt, Delivery, DeliveryStatus, Event, publish
from tests.support.harness import statuses
from tests.support.waiting import wait_until
from worker.demo.receiver import sequence


def test_events_reach_every_subscribed_endpoint_once_with_valid_signatures(
    backend: dict[str, Any], make_runtime: Any, add_endpoint: Any, receiver: Any
) -> None:
    """Every event arrives once per endpoint, signed over exactly the stored bytes,
    with webhook-id = event id; a rolled-back producer sends nothing; workspace A's
    events never reach workspace B; 500-then-200 ends succeeded after two attempts."""
    runtime = make_runtime(**backend)
    a1 = add_endpoint(runtime, receiver=receiver, path="/a1", workspace_id="ws_a")
    a2 = add_endpoint(
        runtime, receiver=receiver, path="/a2", workspace_id="ws_a", event_types=("run.*",)
    )
    add_endpoint(runtime, receiver=receiver, path="/b", workspace_id="ws_b")
    flaky = add_endpoint(
        runtime,
        receiver=receiver,
        path="/flaky",
        workspace_id="ws_a",
        event_types=("project.paused",),
        behaviour=sequence(500, 200),
    )
    # A producer's own table, written in the same transaction as the events.
    producer = sa.Table("runs", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    producer.create(runtime.engine)

    published: list[Event] = []
    with runtime.sessions() as session, session.begin():
        for i in range(10):
            session.execute(producer.insert().values(id=i))
            published.append(
                publish(session, workspace_id="ws_a", type="run.succeeded", data={"run": i})
            )
        published.append(
            publish(session, workspace_id="ws_a", type="project.paused", data={"p": 1})
        )
    with runtime.sessions() as session:
        session.begin()
        session.execute(producer.insert().values(id=99))
        publish(session, workspace_id="ws_a", type="run.succeeded", data={"rolled": "back"})
        session.rollback()

    with runtime.running():
        assert wait_until(lambda: statuses(runtime).count(DeliveryStatus.SUCCEEDED) == 22)
        time.sleep(0.3)  # anything extra would arrive now

    bodies = {e.id: e.body.encode() for e in published}
    got = receiver.received()
    assert all(r.verified for r in got), [r.error for r in got if not r.verified]
    assert receiver.received("/b") == []
    for path, expected in (("/a1", set(bodies)), ("/a2", set(list(bodies)[:10]))):
        arrived = [r.headers["webhook-id"] for r in receiver.received(path)]
        assert sorted(arrived) == sorted(expected)  # once each, no duplicates
    for request in receiver.received("/a1"):
        event_id = request.headers["webhook-id"]
        assert request.body == bodies[event_id]
        Webhook(a1.secret).verify(request.body, request.headers)
    assert len(receiver.received("/flaky")) == 2
    assert b"rolled" not in b"".join(r.body for r in got)
    assert a2.secret != a1.secret

    with runtime.sessions() as session:
        delivery = session.scalars(
            select(Delivery).where(Delivery.endpoint_id == flaky.endpoint.id)
        ).one()
        attempts = list(session.scalars(select(Attempt).where(Attempt.delivery_id == delivery.id)))
        assert session.scalar(select(sa.func.count()).select_from(Event)) == 11
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempt_count == 2
    assert sorted((a.number, a.response_status) for a in attempts) == [(1, 500), (2, 200)]
