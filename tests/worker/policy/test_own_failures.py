"""Our own failures (database, broker) and our own limits never spend one of the
receiver's attempts: the delivery is simply tried again later."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from outbox import DeliveryStatus
from tests.support.harness import Harness
from tests.support.waiting import wait_until
from worker.demo.receiver import Reply
from worker.errors import BrokerUnavailable, DatabaseUnavailable
from worker.fanout.poller import Poller


@pytest.fixture
def dead_engine() -> Iterator[Engine]:
    """An engine whose server refuses every connection (nothing listens on port 1)."""
    engine = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    yield engine
    engine.dispose()


class Outage:
    """A session factory that fails like a database that went away, while ``down``."""

    def __init__(self, real: sessionmaker[Session], dead: Engine) -> None:
        self.real = real
        self.dead = sessionmaker(dead)
        self.down = False

    def __call__(self) -> Session:
        return self.dead() if self.down else self.real()


def test_database_outages_spend_no_attempt(harness: Harness, dead_engine: Engine) -> None:
    """Database down when the message arrives: nothing is sent. Down while recording the
    result: the attempt is not counted, the lease runs out, and the next try is attempt
    number 1 again (the receiver may see the event twice: at-least-once)."""
    outage = Outage(harness.runtime.sessions, dead_engine)
    harness.runtime.deliverer._sessions = outage  # type: ignore[assignment]

    def answer_then_fail(_n: int) -> Reply:
        outage.down = True  # the database goes while the receiver is answering
        return Reply(200)

    harness.endpoint(behaviour=answer_then_fail)
    (delivery_id,) = harness.deliveries()

    outage.down = True
    with pytest.raises(DatabaseUnavailable):
        harness.deliver(delivery_id)
    assert harness.receiver.received() == []

    outage.down = False
    with pytest.raises(DatabaseUnavailable):
        harness.deliver(delivery_id)
    outage.down = False
    row = harness.delivery(delivery_id)
    assert (row.status, row.attempt_count) == (DeliveryStatus.PENDING, 0)
    assert harness.attempts(delivery_id) == []
    assert len(harness.receiver.received()) == 1

    assert harness.deliver(delivery_id).status == "not_claimed"  # still leased
    harness.receiver.route("/hook")  # the receiver answers plainly again
    harness.clock.now = row.lease_until + timedelta(seconds=1)  # type: ignore[operator]
    assert harness.deliver(delivery_id).status == DeliveryStatus.SUCCEEDED
    (attempt,) = harness.attempts(delivery_id)
    assert attempt.number == 1
    assert harness.delivery(delivery_id).attempt_count == 1


def test_the_actor_retries_our_failures_and_only_ours(harness: Harness) -> None:
    """dramatiq retries a message when our side failed (OwnFailure), never for anything
    else: the receiver's failures are scheduled inside the delivery."""
    retry_when = harness.runtime.actor.options["retry_when"]
    assert retry_when(0, DatabaseUnavailable("down"))
    assert retry_when(0, BrokerUnavailable("down"))
    assert not retry_when(0, ValueError("a bug"))


def test_a_broker_outage_when_rescheduling_loses_nothing(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the broker is down when the actor re-sends itself after a failure, the row
    still holds its next attempt time and the sweeper rings it later; only the
    receiver's one real attempt is counted."""
    harness.endpoint(behaviour=lambda _n: Reply(500))
    (delivery_id,) = harness.deliveries()

    def broker_down(*_args: Any, **_kwargs: Any) -> None:
        raise ConnectionError("redis is gone")

    monkeypatch.setattr(harness.runtime.actor, "send_with_options", broker_down)
    harness.runtime.actor.fn(delivery_id)  # as a worker thread runs it: no exception
    # The actor hands the claim to the sending loop; the engine's recorder writes it.
    assert wait_until(lambda: harness.delivery(delivery_id).attempt_count == 1)
    # Let the engine finish what follows a record (its refill of the freed slot), so
    # that only the sweeper can pick the delivery up once the clock moves on.
    harness.runtime.deliverer.close(timeout=5)
    row = harness.delivery(delivery_id)
    assert (row.status, row.attempt_count) == (DeliveryStatus.PENDING, 1)
    assert row.next_attempt_at is not None

    rung: list[str] = []
    sweeper = Poller(
        session_factory=harness.runtime.sessions,
        dispatch=rung.extend,
        sweep_after=timedelta(seconds=2),
        clock=harness.clock,
    )
    harness.clock.advance(timedelta(seconds=3))
    assert sweeper.sweep_once() == 1 and rung == [delivery_id]


def test_a_broker_outage_at_fan_out_loses_nothing(harness: Harness) -> None:
    """Deliveries committed while the broker is down stay pending, unspent, until the
    sweeper rings them."""
    harness.endpoint()
    harness.publish(3)

    def broker_down(_ids: Any) -> None:
        raise BrokerUnavailable("cannot enqueue")

    poller = Poller(
        session_factory=harness.runtime.sessions,
        dispatch=broker_down,
        sweep_after=timedelta(seconds=2),
        clock=harness.clock,
    )
    assert poller.poll_once().deliveries == 3
    harness.clock.advance(timedelta(seconds=3))
    rung: list[str] = []
    poller.dispatch = rung.extend
    assert poller.sweep_once() == 3
    for delivery_id in rung:
        assert harness.delivery(delivery_id).attempt_count == 0
        assert harness.deliver(delivery_id).status == DeliveryStatus.SUCCEEDED
