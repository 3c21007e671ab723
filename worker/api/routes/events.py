"""``/v1/events``: the outbox feed and publishing for producers that are not Python.

``POST /v1/events`` is not transactional with the producer's own work (it cannot be:
the producer's database is not ours to join); producers that can share a transaction
should publish with ``outbox.publish`` or the SQL function instead.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime
from starlette.responses import Response

from outbox import ids
from outbox.errors import CatentioError, InvalidEventType, PayloadNotJSON, PayloadTooLarge
from outbox.publish import publish
from worker.api import cursor
from worker.api.access import Reader, Writer
from worker.api.envelope import Envelope, ListEnvelope, wire
from worker.api.errors import api_error_for
from worker.api.openapi import ERRORS
from worker.api.routes.webhooks import Cursor, Limit
from worker.api.schemas.events import (
    EventCreate,
    EventDetail,
    EventOut,
    FanoutDelivery,
    event_detail_of,
    event_of,
)
from worker.errors import EventNotFound
from worker.ops.history import EventFilter, event_deliveries, event_page, get_event

router = APIRouter(prefix="/v1/events", tags=["events"], responses=ERRORS)


def _field(exc: CatentioError) -> str | None:
    if isinstance(exc, InvalidEventType):
        return "type"
    if isinstance(exc, PayloadNotJSON | PayloadTooLarge):
        return "data"
    return None


@router.post("", status_code=201, response_model=Envelope[EventOut], summary="Publish an event")
def publish_event(caller: Writer, body: EventCreate) -> Response:
    """Validate, render and store the event, exactly as ``outbox.publish`` does; the
    poller fans it out to the workspace's matching endpoints. ``Idempotency-Key``
    is also the event's idempotency key: the same key publishes one event."""
    context = caller.context
    key = caller.idempotent.key if caller.idempotent is not None else None

    def work() -> tuple[int, object]:
        try:
            with caller.writing():
                event = publish(
                    caller.session,
                    workspace_id=caller.workspace_id,
                    type=body.type,
                    data=body.data,
                    idempotency_key=key,
                    request_id=caller.request_id,
                    max_body_bytes=context.settings.max_body_bytes,
                    clock=context.clock,
                )
                view = event_of(event)
        except CatentioError as exc:
            raise api_error_for(exc, field=_field(exc)) from None
        return 201, wire(view)

    return caller.respond(work)


EventId = Annotated[str, Path(max_length=40, description="The event's id (`evt_…`).")]


@router.get("", response_model=ListEnvelope[EventOut], summary="The outbox feed")
def list_events(
    caller: Reader,
    type: Annotated[
        list[Annotated[str, Query(max_length=130)]] | None,
        Query(max_length=50, description="`run.succeeded`, `run.*` or `*`."),
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="Created at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Created before.")] = None,
    limit: Limit = cursor.DEFAULT_LIMIT,
    cursor_: Cursor = None,
) -> Response:
    """The workspace's events, newest first."""
    selection = EventFilter(
        workspace_id=caller.workspace_id,
        event_types=tuple(type or ()),
        since=since,
        until=until,
    )
    filters = {"type": sorted(type or ()), "since": since, "until": until}
    after = cursor.decode(cursor_, filters, prefix=ids.EVENT)
    page = event_page(caller.session, selection, limit=limit, after=after)
    next_cursor = cursor.encode(page.next_cursor, filters) if page.next_cursor else None
    return caller.page([wire(event_of(e)) for e in page.rows], limit=limit, next_cursor=next_cursor)


@router.get("/{event_id}", response_model=Envelope[EventDetail], summary="An event and its fan-out")
def get_event_detail(caller: Reader, event_id: EventId) -> Response:
    """The event with its fan-out: which endpoints it went to and how each stands."""
    event = get_event(caller.session, event_id)
    if event.workspace_id != caller.workspace_id:
        raise EventNotFound(f"no event {event_id!r}")
    fanout = [
        FanoutDelivery(
            delivery_id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            status=delivery.status,
            attempts=delivery.attempt_count,
            last_status_code=delivery.last_status_code,
        )
        for delivery, _url in event_deliveries(caller.session, event_id)
    ]
    return caller.ok(wire(event_detail_of(event, fanout)))
