"""The circuit breaker: after consecutive failures one probe at a time, the others held
without spending attempts, and everything flowing again after the probe succeeds."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from outbox import DeliveryStatus
from tests.support.harness import Harness, Switch
from worker.demo.receiver import always
from worker.policy.admission import Hold

RETRY = timedelta(seconds=10)


def circuit_harness(make_harness: Any, database_url: str, **overrides: Any) -> Harness:
    settings: dict[str, Any] = {"circuit_threshold": 3, "retry_schedule": (RETRY,) * 5}
    settings.update(overrides)
    return make_harness(database_url, **settings)


def test_failing_endpoint_gets_one_probe_at_a_time_then_flows_again(
    make_harness: Any, database_url: str
) -> None:
    """Three failures open the circuit; other deliveries wait behind the probe (their
    next_attempt_at moves, no attempt is spent); while a probe is in flight nobody else
    is sent; the probe's success closes the circuit and releases them all."""
    harness = circuit_harness(make_harness, database_url)
    switch = Switch(500)
    created = harness.endpoint(behaviour=switch)
    ids = harness.deliveries(7)
    for delivery_id in ids[:3]:
        assert harness.deliver(delivery_id).status == DeliveryStatus.PENDING
    endpoint = harness.endpoint_row(created.endpoint.id)
    assert endpoint.consecutive_failures == 3
    assert endpoint.probe_delivery_id == ids[2]
    assert endpoint.probe_until == harness.clock.now + RETRY

    held = harness.deliver(ids[3])
    row = harness.delivery(ids[3])
    assert (held.status, held.held_by) == ("postponed", Hold.CIRCUIT)
    assert row.next_attempt_at is not None and row.next_attempt_at >= endpoint.probe_until
    assert (row.attempt_count, row.held_by) == (0, Hold.CIRCUIT)
    assert len(harness.receiver.received()) == 3

    # The probe's retry comes due: it goes out, and is held at the receiver.
    switch.gate = threading.Event()
    switch.arrived.clear()
    harness.clock.advance(RETRY)
    probe = threading.Thread(target=harness.deliver, args=(ids[2],))
    probe.start()
    assert switch.arrived.wait(5)
    for delivery_id in (ids[0], ids[4], ids[5]):  # due or new: all wait for the probe
        assert harness.deliver(delivery_id).held_by == Hold.CIRCUIT
    assert len(harness.receiver.received()) == 3  # the probe is still in the receiver

    switch.status = 200
    switch.gate.set()
    probe.join(10)
    assert harness.delivery(ids[2]).status == DeliveryStatus.SUCCEEDED
    endpoint = harness.endpoint_row(created.endpoint.id)
    assert (endpoint.consecutive_failures, endpoint.probe_delivery_id) == (0, None)
    for delivery_id in (ids[3], ids[4], ids[5]):
        released = harness.delivery(delivery_id)
        assert released.held_by is None
        assert released.next_attempt_at == harness.clock.now

    switch.gate = None
    for delivery_id in ids:
        if harness.delivery(delivery_id).status == DeliveryStatus.PENDING:
            harness.due(delivery_id)
    rows = [harness.delivery(d) for d in ids]
    assert [r.status for r in rows] == [DeliveryStatus.SUCCEEDED] * 7
    # Held deliveries spent nothing: one attempt each for those never tried before.
    assert [r.attempt_count for r in rows[3:]] == [1, 1, 1, 1]
    assert [r.attempt_count for r in rows[:3]] == [2, 2, 2]


def test_a_failed_probe_holds_the_others_until_its_own_next_attempt(
    make_harness: Any, sqlite_url: str
) -> None:
    """While failing, the endpoint is tried at the pace of the probe's own retry
    schedule: after the probe fails again the others wait for its next attempt."""
    harness = circuit_harness(make_harness, sqlite_url)
    harness.endpoint(behaviour=Switch(500))
    ids = harness.deliveries(5)
    for delivery_id in ids[:3]:
        harness.deliver(delivery_id)
    harness.clock.advance(RETRY)
    # Another due delivery may be the next probe; it fails and sets the pace.
    assert harness.deliver(ids[0]).status == DeliveryStatus.PENDING
    probe_retry = harness.delivery(ids[0]).next_attempt_at
    assert probe_retry == harness.clock.now + RETRY
    for delivery_id in (ids[1], ids[2], ids[3], ids[4]):
        result = harness.deliver(delivery_id)
        assert result.held_by == Hold.CIRCUIT
        assert harness.delivery(delivery_id).next_attempt_at >= probe_retry
    assert len(harness.receiver.received()) == 4


def test_an_abort_proves_the_receiver_is_alive(make_harness: Any, sqlite_url: str) -> None:
    """A probe answered with ``webhook-delivery: abort-message`` closes the circuit: the
    receiver answered and decided about that one message."""
    harness = circuit_harness(make_harness, sqlite_url)
    switch = Switch(500)
    created = harness.endpoint(behaviour=switch)
    ids = harness.deliveries(4)
    for delivery_id in ids[:3]:
        harness.deliver(delivery_id)
    harness.receiver.route(
        "/hook",
        secret=created.secret,
        behaviour=always(400, headers={"webhook-delivery": "abort-message"}),
    )
    assert harness.due(ids[2]).status == DeliveryStatus.FAILED
    endpoint = harness.endpoint_row(created.endpoint.id)
    assert endpoint.consecutive_failures == 0 and endpoint.probe_delivery_id is None


def test_a_dead_probe_does_not_block_the_endpoint_forever(
    make_harness: Any, sqlite_url: str
) -> None:
    """If the probe's worker dies, its slot ends with its lease and another delivery
    becomes the probe."""
    harness = circuit_harness(make_harness, sqlite_url)
    created = harness.endpoint(behaviour=Switch(500))
    ids = harness.deliveries(4)
    for delivery_id in ids[:3]:
        harness.deliver(delivery_id)
    harness.clock.advance(RETRY)
    # A probe that started and never came back: lease and probe slot held...
    harness.update_endpoint(
        created.endpoint.id,
        probe_delivery_id=ids[0],
        probe_until=harness.clock.now + harness.runtime.settings.lease_duration,
    )
    assert harness.deliver(ids[3]).held_by == Hold.CIRCUIT
    # ...until the lease is over: then the held delivery is the probe.
    assert harness.due(ids[3]).status == DeliveryStatus.PENDING
    assert len(harness.receiver.received()) == 4
    assert harness.endpoint_row(created.endpoint.id).probe_delivery_id == ids[3]
