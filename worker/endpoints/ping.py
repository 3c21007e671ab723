"""A test event for one endpoint: ``webhook.test``, sent to that endpoint only.

The event is published into the outbox like any other (same rendering, same size
limit) but marked dispatched in the same transaction, with its one delivery already
made, so the poller never fans it out to the workspace's other endpoints. It is one of
our ``webhook.*`` events: exhausting its attempts publishes nothing further.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from outbox import ids
from outbox.envelope import isoformat
from outbox.models import Delivery, DeliveryStatus, Endpoint, Trigger
from outbox.publish import publish
from worker.errors import Conflict

TEST_EVENT = "webhook.test"
"""The type of a test event."""


@dataclass(frozen=True)
class PingDelivery:
    """The event and delivery a test made."""

    event_id: str
    delivery_id: str


def send_test_event(session: Session, endpoint: Endpoint, *, now: datetime) -> PingDelivery:
    """Add a ``webhook.test`` event and its delivery to ``endpoint`` to ``session``.
    Refused with ``Conflict`` while the endpoint is disabled (it would be skipped)."""
    if not endpoint.enabled:
        raise Conflict(f"endpoint {endpoint.id} is disabled; enable it before testing it")
    event = publish(
        session,
        workspace_id=endpoint.workspace_id,
        type=TEST_EVENT,
        data={"endpointId": endpoint.id, "message": "a test event", "sentAt": isoformat(now)},
        clock=lambda: now,
    )
    event.dispatched_at = now
    delivery = Delivery(
        id=ids.new_id(ids.DELIVERY),
        event_id=event.id,
        endpoint_id=endpoint.id,
        workspace_id=endpoint.workspace_id,
        event_type=TEST_EVENT,
        status=DeliveryStatus.PENDING,
        attempt_count=0,
        cycle_attempts=0,
        next_trigger=Trigger.SCHEDULED,
        next_attempt_at=now,
        rung_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(delivery)
    session.flush()
    return PingDelivery(event.id, delivery.id)
