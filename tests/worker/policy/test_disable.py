"""Disabling endpoints: after 5 days of continuous failure or a 410, with the waiting
deliveries kept as ``skipped`` and operational events published to the workspace."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

from outbox import DeliveryStatus
from tests.support.harness import Harness, Switch
from worker.demo.receiver import always
from worker.endpoints.switches import disable_endpoint, enable_endpoint
from worker.ops.replay import replay_delivery
from worker.policy.notices import DELIVERY_EXHAUSTED, ENDPOINT_DISABLED

DAY = timedelta(days=1)


def daily_harness(make_harness: Any, database_url: str, **overrides: Any) -> Harness:
    """Retries a day apart; the circuit threshold out of the way."""
    settings: dict[str, Any] = {"retry_schedule": (DAY,) * 10, "circuit_threshold": 100}
    settings.update(overrides)
    return make_harness(database_url, **settings)


def notice_data(harness: Harness, type: str) -> list[dict[str, Any]]:
    return [json.loads(e.body)["data"]["data"] for e in harness.events(type)]


def test_an_endpoint_failing_for_five_days_is_disabled(
    make_harness: Any, database_url: str
) -> None:
    """Failures every day for five days disable the endpoint with the reason recorded;
    its waiting deliveries and those created later are kept as ``skipped``; the
    workspace gets ``webhook.endpoint.disabled``."""
    harness = daily_harness(make_harness, database_url)
    created = harness.endpoint(behaviour=always(500))
    started = harness.clock.now
    first, waiting = harness.deliveries(2)
    harness.deliver(first)
    for day in range(1, 5):
        assert harness.due(first).status == DeliveryStatus.PENDING, day
        assert harness.endpoint_row(created.endpoint.id).enabled
    result = harness.due(first)
    assert harness.clock.now - started == 5 * DAY

    endpoint = harness.endpoint_row(created.endpoint.id)
    assert not endpoint.enabled and endpoint.disabled_at == harness.clock.now
    assert endpoint.disabled_reason is not None and "failing since" in endpoint.disabled_reason
    assert result.status == DeliveryStatus.SKIPPED  # cut short, kept for replay
    row = harness.delivery(waiting)
    assert (row.status, row.attempt_count) == (DeliveryStatus.SKIPPED, 0)
    assert row.last_error == f"endpoint disabled: {endpoint.disabled_reason}"

    (notice,) = notice_data(harness, ENDPOINT_DISABLED)
    assert notice["endpointId"] == created.endpoint.id
    assert notice["reason"] == endpoint.disabled_reason
    assert notice["consecutiveFailures"] == 6
    (event,) = harness.events(ENDPOINT_DISABLED)
    assert event.workspace_id == "ws_a" and event.dispatched_at is None

    later = harness.deliveries(1)
    assert later == []  # fanned out as skipped, nothing to ring
    assert harness.deliver(first).status == "not_claimed"
    assert len(harness.receiver.received()) == 6


def test_a_success_restarts_the_five_days(make_harness: Any, sqlite_url: str) -> None:
    """Only *continuous* failure counts: after a success the five days start again, so
    seven days of mostly failing, with one success on day three, disable nothing."""
    harness = daily_harness(make_harness, sqlite_url)
    switch = Switch(500)
    created = harness.endpoint(behaviour=switch)
    (first,) = harness.deliveries()
    harness.deliver(first)
    harness.due(first)
    harness.due(first)
    switch.status = 200
    assert harness.due(first).status == DeliveryStatus.SUCCEEDED  # day 3
    switch.status = 500
    harness.clock.advance(DAY)
    (second,) = harness.deliveries()
    harness.deliver(second)  # day 4
    for _ in range(3):
        assert harness.due(second).status == DeliveryStatus.PENDING  # days 5, 6, 7
    endpoint = harness.endpoint_row(created.endpoint.id)
    assert endpoint.enabled
    assert endpoint.consecutive_failures == 4
    assert endpoint.failing_since == harness.clock.now - 3 * DAY


def test_410_disables_the_endpoint_and_keeps_the_rest_as_skipped(harness: Harness) -> None:
    """A 410 disables the endpoint (reason recorded), fails that delivery, keeps the
    endpoint's other waiting deliveries as ``skipped`` and tells the workspace."""
    created = harness.endpoint(behaviour=always(410))
    gone, waiting = harness.deliveries(2)
    assert harness.deliver(gone).status == DeliveryStatus.FAILED
    endpoint = harness.endpoint_row(created.endpoint.id)
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "410 Gone: endpoint disabled"
    assert harness.delivery(gone).last_error_kind == "gone"
    assert harness.delivery(waiting).status == DeliveryStatus.SKIPPED
    assert [n["endpointId"] for n in notice_data(harness, ENDPOINT_DISABLED)] == [
        created.endpoint.id
    ]


def test_skipped_deliveries_can_be_replayed_once_enabled(harness: Harness) -> None:
    """Skipped is kept, not dropped: after the endpoint is enabled again, replaying the
    delivery sends it with its original webhook-id."""
    switch = Switch(410)
    created = harness.endpoint(behaviour=switch)
    gone, waiting = harness.deliveries(2)
    harness.deliver(gone)
    assert harness.delivery(waiting).status == DeliveryStatus.SKIPPED
    switch.status = 200
    with harness.runtime.sessions() as session, session.begin():
        enable_endpoint(session, created.endpoint.id, now=harness.clock.now)
        assert replay_delivery(session, waiting, now=harness.clock.now).reopened
    assert harness.deliver(waiting).status == DeliveryStatus.SUCCEEDED
    event_id = harness.delivery(waiting).event_id
    assert harness.receiver.received()[-1].headers["webhook-id"] == event_id
    assert harness.attempts(waiting)[0].trigger == "replay"


def test_an_exhausted_delivery_is_announced_once(harness: Harness) -> None:
    """A delivery that spends its whole schedule publishes ``webhook.delivery.exhausted``
    to its workspace with what happened last."""
    created = harness.endpoint(behaviour=always(503))
    (delivery_id,) = harness.deliveries()
    harness.deliver(delivery_id)
    while harness.delivery(delivery_id).status == DeliveryStatus.PENDING:
        assert harness.events(DELIVERY_EXHAUSTED) == []
        harness.due(delivery_id)
    (notice,) = notice_data(harness, DELIVERY_EXHAUSTED)
    row = harness.delivery(delivery_id)
    assert notice == {
        "deliveryId": delivery_id,
        "eventId": row.event_id,
        "eventType": "run.succeeded",
        "endpointId": created.endpoint.id,
        "attempts": 4,
        "lastStatusCode": 503,
        "lastErrorKind": "status",
    }


def test_notices_are_delivered_but_never_announce_themselves(harness: Harness) -> None:
    """A notice goes to the workspace's other ``*`` subscribers like any event (never
    to the endpoint it is about); when such a delivery is itself exhausted, no further
    notice is published (no loop)."""
    failing = harness.endpoint(path="/a", behaviour=always(500))
    other = harness.endpoint(path="/b", behaviour=always(500), event_types=("webhook.*",))
    (delivery_id,) = harness.deliveries()
    harness.deliver(delivery_id)
    while harness.delivery(delivery_id).status == DeliveryStatus.PENDING:
        harness.due(delivery_id)
    (notice_delivery,) = harness.fan_out()
    row = harness.delivery(notice_delivery)
    assert row.event_type == DELIVERY_EXHAUSTED
    assert row.endpoint_id == other.endpoint.id != failing.endpoint.id
    harness.deliver(notice_delivery)
    while harness.delivery(notice_delivery).status == DeliveryStatus.PENDING:
        harness.due(notice_delivery)
    assert harness.delivery(notice_delivery).status == DeliveryStatus.FAILED
    assert len(harness.events(DELIVERY_EXHAUSTED)) == 1
    assert harness.fan_out() == []


def test_notices_stay_in_their_workspace(harness: Harness) -> None:
    """A notice reaches the endpoints of the failing endpoint's workspace only."""
    harness.endpoint(path="/gone", behaviour=always(410))
    other = harness.endpoint(path="/other", workspace_id="ws_b")
    (gone,) = harness.deliveries()
    harness.deliver(gone)
    assert harness.fan_out() == []  # ws_a's only endpoint is the disabled one
    (event,) = harness.events(ENDPOINT_DISABLED)
    assert event.workspace_id == "ws_a"
    assert harness.receiver.received("/other") == []
    assert other.endpoint.workspace_id == "ws_b"


def test_operational_events_can_be_switched_off(make_harness: Any, sqlite_url: str) -> None:
    """With ``operational_events=False`` nothing is published, the policy still applies."""
    harness = make_harness(sqlite_url, operational_events=False)
    created = harness.endpoint(behaviour=always(410))
    (gone,) = harness.deliveries()
    harness.deliver(gone)
    assert not harness.endpoint_row(created.endpoint.id).enabled
    assert harness.events(ENDPOINT_DISABLED) == []


def test_a_delivery_in_flight_when_its_endpoint_is_disabled_is_kept_as_skipped(
    harness: Harness,
) -> None:
    """Disabled by an operator while an attempt is on the wire: the attempt is recorded,
    the delivery is kept as ``skipped`` instead of retrying, and the health counters of
    the disabled endpoint decide nothing more (no second disable, no second notice: the
    operator's disable published the only one)."""
    switch = Switch(500)
    switch.gate = threading.Event()
    created = harness.endpoint(behaviour=switch)
    (delivery_id,) = harness.deliveries()
    sending = threading.Thread(target=harness.deliver, args=(delivery_id,))
    sending.start()
    assert switch.arrived.wait(5)
    with harness.runtime.sessions() as session, session.begin():
        disable_endpoint(session, created.endpoint.id, reason="maintenance", now=harness.clock.now)
    switch.gate.set()
    sending.join(10)
    row = harness.delivery(delivery_id)
    assert (row.status, row.attempt_count) == (DeliveryStatus.SKIPPED, 1)
    assert row.last_error == "endpoint disabled: maintenance; last try: HTTP 500"
    assert harness.endpoint_row(created.endpoint.id).disabled_reason == "maintenance"
    assert len(harness.events(ENDPOINT_DISABLED)) == 1
