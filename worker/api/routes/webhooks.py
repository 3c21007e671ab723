"""``/v1/webhooks``: register, list, read, change and delete endpoints."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy.orm import Session
from starlette.responses import Response

from outbox import ids
from outbox.errors import CatentioError
from worker.api import cursor
from worker.api.access import Caller, Reader, Writer
from worker.api.envelope import Envelope, ListEnvelope, wire
from worker.api.openapi import ERRORS
from worker.api.schemas.webhooks import (
    Deleted,
    RotateSecret,
    Webhook,
    WebhookCreate,
    WebhookUpdate,
    WebhookWithSecret,
    webhook_of,
)
from worker.endpoints.registry import (
    EndpointChanges,
    create_endpoint,
    delete_endpoint,
    endpoint_page,
    get_workspace_endpoint,
    update_endpoint,
)
from worker.endpoints.rotation import rotate_secret
from worker.endpoints.switches import (
    disable_endpoint,
    enable_endpoint,
    release_paused,
    set_paused,
)
from worker.errors import InvalidEndpointURL, InvalidEventFilter, InvalidPayloadFilter

FIELDS: dict[type[CatentioError], str] = {
    InvalidEndpointURL: "url",
    InvalidEventFilter: "eventTypes",
    InvalidPayloadFilter: "filter",
}
"""Which request field a domain error concerns."""

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=ERRORS)

WebhookId = Annotated[str, Path(max_length=40, description="The endpoint's id (`ep_…`).")]
Limit = Annotated[int, Query(ge=1, le=cursor.MAX_LIMIT, description="Rows per page.")]
Cursor = Annotated[
    str | None,
    Query(
        alias="cursor",
        max_length=200,
        description="`meta.page.nextCursor` of the previous page.",
    ),
]


@router.get("", response_model=ListEnvelope[Webhook], summary="List endpoints")
def list_webhooks(
    caller: Reader,
    limit: Limit = cursor.DEFAULT_LIMIT,
    cursor_: Annotated[str | None, Query(alias="cursor", max_length=200)] = None,
) -> Response:
    """The workspace's endpoints, newest first."""
    filters = {"workspace": caller.workspace_id}
    after = cursor.decode(cursor_, filters, prefix=ids.ENDPOINT)
    rows = endpoint_page(
        caller.session, workspace_id=caller.workspace_id, limit=limit + 1, after=after
    )
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = cursor.encode(rows[-1].id, filters) if more else None
    return caller.page([wire(webhook_of(e)) for e in rows], limit=limit, next_cursor=next_cursor)


@router.get("/{webhook_id}", response_model=Envelope[Webhook], summary="Read an endpoint")
def get_webhook(caller: Reader, webhook_id: WebhookId) -> Response:
    """One endpoint, with its state and health (never its secrets)."""
    endpoint = get_workspace_endpoint(caller.session, caller.workspace_id, webhook_id)
    return caller.ok(wire(webhook_of(endpoint)))


@router.post(
    "",
    status_code=201,
    response_model=Envelope[WebhookWithSecret],
    summary="Register an endpoint",
)
def create_webhook(caller: Writer, body: WebhookCreate) -> Response:
    """Register an endpoint. The response holds its signing secret, shown only here."""

    def work() -> tuple[int, object]:
        context = caller.context
        with caller.writing():
            created = create_endpoint(
                caller.session,
                context.box,
                workspace_id=caller.workspace_id,
                url=body.url,
                event_types=body.event_types,
                scheme=body.scheme,
                headers=body.headers,
                description=body.description,
                max_concurrency=body.max_concurrency,
                rate_limit=body.rate_limit,
                payload_filter=body.filter,
                ordering=body.ordering,
                max_header_bytes=context.settings.max_header_bytes,
                allowed_networks=context.settings.allowed_networks,
                clock=context.clock,
            )
            view = webhook_of(created.endpoint)
        return 201, wire(WebhookWithSecret(**view.model_dump(), secret=created.secret))

    return caller.respond(work, fields=FIELDS)


@router.patch("/{webhook_id}", response_model=Envelope[Webhook], summary="Change an endpoint")
def update_webhook(caller: Writer, webhook_id: WebhookId, body: WebhookUpdate) -> Response:
    """Change the fields given; new filters apply to events fanned out from now on."""
    given = body.model_fields_set
    changes = EndpointChanges(
        url=body.url,
        event_types=body.event_types,
        headers=body.headers,
        description=body.description,
        max_concurrency=(body.max_concurrency or 0) if "max_concurrency" in given else None,
        rate_limit=(body.rate_limit or 0.0) if "rate_limit" in given else None,
        # null removes the filter (an empty mapping, for the domain).
        payload_filter=(body.filter or {}) if "filter" in given else None,
        ordering=body.ordering,
    )

    def work() -> tuple[int, object]:
        with caller.writing():
            get_workspace_endpoint(caller.session, caller.workspace_id, webhook_id)
            endpoint = update_endpoint(
                caller.session,
                webhook_id,
                changes,
                now=caller.context.clock(),
                max_header_bytes=caller.context.settings.max_header_bytes,
                allowed_networks=caller.context.settings.allowed_networks,
            )
            return 200, wire(webhook_of(endpoint))

    return caller.respond(work, fields=FIELDS)


@router.delete("/{webhook_id}", response_model=Envelope[Deleted], summary="Delete an endpoint")
def delete_webhook(
    caller: Writer,
    webhook_id: WebhookId,
    force: Annotated[
        bool, Query(description="Delete even with deliveries pending (they are never sent).")
    ] = False,
) -> Response:
    """Delete the endpoint with its deliveries and their attempts. Refused (409) while
    deliveries are pending, unless ``force=true``."""

    def work() -> tuple[int, object]:
        get_workspace_endpoint(caller.session, caller.workspace_id, webhook_id)
        caller.session.rollback()
        deleted = delete_endpoint(caller.context.sessions, webhook_id, force=force)
        return 200, wire(Deleted(id=webhook_id, deleted=True, deliveries_deleted=deleted))

    return caller.respond(work)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=Envelope[WebhookWithSecret],
    summary="Rotate the signing secret",
)
def rotate_webhook_secret(
    caller: Writer, webhook_id: WebhookId, body: RotateSecret | None = None
) -> Response:
    """A new secret signs from now on; the replaced ones keep signing for the grace
    period. The new secret is in the response, shown only here."""
    request = body or RotateSecret()

    def work() -> tuple[int, object]:
        context = caller.context
        with caller.writing():
            get_workspace_endpoint(caller.session, caller.workspace_id, webhook_id)
            rotation = rotate_secret(
                caller.session,
                context.box,
                webhook_id,
                grace=timedelta(seconds=request.grace_seconds),
                scheme=request.scheme,
                now=context.clock(),
            )
            view = webhook_of(rotation.endpoint)
        return 200, wire(WebhookWithSecret(**view.model_dump(), secret=rotation.secret))

    return caller.respond(work)


def _state_change(
    caller: Caller, webhook_id: str, change: Callable[[Session, datetime], object]
) -> Response:
    def work() -> tuple[int, object]:
        with caller.writing():
            get_workspace_endpoint(caller.session, caller.workspace_id, webhook_id)
            change(caller.session, caller.context.clock())
        caller.session.expire_all()
        endpoint = get_workspace_endpoint(caller.session, caller.workspace_id, webhook_id)
        return 200, wire(webhook_of(endpoint))

    return caller.respond(work)


@router.post("/{webhook_id}/disable", response_model=Envelope[Webhook], summary="Disable")
def disable_webhook(caller: Writer, webhook_id: WebhookId) -> Response:
    """Stop delivering: new and due deliveries end ``skipped`` (replayable later)."""
    notify = caller.context.settings.operational_events
    return _state_change(
        caller,
        webhook_id,
        lambda s, now: disable_endpoint(s, webhook_id, reason=None, now=now, notify=notify),
    )


@router.post("/{webhook_id}/enable", response_model=Envelope[Webhook], summary="Enable")
def enable_webhook(caller: Writer, webhook_id: WebhookId) -> Response:
    """Deliver again, with a fresh failure record (skipped deliveries stay skipped:
    replay them with ``POST …/replay``)."""
    return _state_change(caller, webhook_id, lambda s, now: enable_endpoint(s, webhook_id, now=now))


@router.post("/{webhook_id}/pause", response_model=Envelope[Webhook], summary="Pause")
def pause_webhook(caller: Writer, webhook_id: WebhookId) -> Response:
    """Hold deliveries without spending their attempts."""
    return _state_change(
        caller, webhook_id, lambda s, now: set_paused(s, webhook_id, True, now=now)
    )


@router.post("/{webhook_id}/resume", response_model=Envelope[Webhook], summary="Resume")
def resume_webhook(caller: Writer, webhook_id: WebhookId) -> Response:
    """Deliver again after a pause; held deliveries are sent now."""
    response = _state_change(
        caller, webhook_id, lambda s, now: set_paused(s, webhook_id, False, now=now)
    )
    if response.status_code == 200:
        released = release_paused(caller.context.sessions, webhook_id, now=caller.context.clock())
        caller.ring(released)
    return response
