"""``/v1/events``: the outbox feed, an event's fan-out, and publishing over HTTP."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field

from outbox.models import Event
from worker.api.envelope import Shape
from worker.api.schemas.common import Timestamp, stamp


class EventOut(Shape):
    """An event as it is in the outbox; ``data`` is what every delivery carries."""

    id: str
    workspace_id: str
    type: str
    data: dict[str, Any]
    idempotency_key: str | None
    request_id: str | None
    created_at: Timestamp
    dispatched_at: Timestamp | None = Field(description="When it was fanned out (null: waiting).")


class FanoutDelivery(Shape):
    """One delivery of the event."""

    delivery_id: str
    endpoint_id: str
    status: str
    attempts: int
    last_status_code: int | None


class EventDetail(EventOut):
    """An event with its fan-out: which endpoints it went to, and how each delivery stands."""

    deliveries: list[FanoutDelivery]


class EventCreate(Shape):
    """Publish an event (``Idempotency-Key`` becomes the event's idempotency key)."""

    type: Annotated[str, Field(max_length=128, examples=["run.succeeded"])]
    data: Annotated[dict[str, Any], Field(examples=[{"runId": "run_123", "status": "ok"}])]


def event_of(event: Event) -> EventOut:
    """The API's view of an outbox row."""
    return EventOut(**_fields(event))


def _fields(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "workspace_id": event.workspace_id,
        "type": event.type,
        "data": json.loads(event.body)["data"]["data"],
        "idempotency_key": event.idempotency_key,
        "request_id": event.request_id,
        "created_at": stamp(event.created_at) or "",
        "dispatched_at": stamp(event.dispatched_at),
    }


def event_detail_of(event: Event, deliveries: list[FanoutDelivery]) -> EventDetail:
    """An event with its fan-out."""
    return EventDetail(**_fields(event), deliveries=deliveries)
