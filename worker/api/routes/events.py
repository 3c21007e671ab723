"""``/v1/events``: the outbox feed and publishing for producers that are not Python.

``POST /v1/events`` is not transactional with the producer's own work (it cannot be:
the producer's database is not ours to join); producers that can share a transaction
should publish with ``outbox.publish`` or the SQL function instead.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from outbox.errors import CatentioError, InvalidEventType, PayloadNotJSON, PayloadTooLarge
from outbox.publish import publish
from worker.api.access import Writer
from worker.api.envelope import Envelope, wire
from worker.api.errors import api_error_for
from worker.api.openapi import ERRORS
from worker.api.schemas.events import EventCreate, EventOut, event_of

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
            with caller.session.begin():
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
