"""``/v1/webhooks/{id}/deliveries`` and replays: an endpoint's history, one delivery with
every attempt, replaying one, and bulk replays in the background."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime
from starlette.responses import Response

from outbox import ids
from outbox.models import Delivery
from worker.api import cursor
from worker.api.access import Caller, Reader, Writer
from worker.api.envelope import Envelope, ListEnvelope, wire
from worker.api.openapi import ERRORS
from worker.api.routes.webhooks import Cursor, Limit, WebhookId
from worker.api.schemas.deliveries import (
    BulkPreviewOut,
    BulkReplayRequest,
    DeliveryDetail,
    DeliveryOut,
    DeliveryReplayed,
    DeliveryStatusName,
    ReplayRunOut,
    delivery_detail_of,
    delivery_of,
    run_of,
)
from worker.endpoints.registry import get_workspace_endpoint
from worker.errors import DeliveryNotFound
from worker.ops.history import (
    DeliveryFilter,
    count_deliveries,
    delivery_attempts,
    delivery_page,
    get_delivery,
)
from worker.ops.replay import bulk_selection, preview_bulk, replay_delivery
from worker.ops.replay_runs import get_run, run_status, start_run

router = APIRouter(prefix="/v1/webhooks/{webhook_id}", tags=["deliveries"], responses=ERRORS)

DeliveryId = Annotated[str, Path(max_length=40, description="The delivery's id (`dlv_…`).")]
ReplayId = Annotated[str, Path(max_length=40, description="The replay's id (`rpl_…`).")]


def _delivery(caller: Caller, webhook_id: str, delivery_id: str) -> Delivery:
    """The delivery, if it is of this endpoint in the caller's workspace."""
    get_workspace_endpoint(caller.session, caller.workspace_id, webhook_id)
    delivery = get_delivery(caller.session, delivery_id)
    if delivery.endpoint_id != webhook_id:
        raise DeliveryNotFound(f"no delivery {delivery_id!r}")
    return delivery


@router.get("/deliveries", response_model=ListEnvelope[DeliveryOut], summary="List deliveries")
def list_deliveries(
    caller: Reader,
    webhook_id: WebhookId,
    status: Annotated[list[DeliveryStatusName] | None, Query(max_length=4)] = None,
    type: Annotated[
        list[Annotated[str, Query(max_length=130)]] | None,
        Query(max_length=50, description="`run.succeeded`, `run.*` or `*`."),
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="Created at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Created before.")] = None,
    limit: Limit = cursor.DEFAULT_LIMIT,
    cursor_: Cursor = None,
) -> Response:
    """The endpoint's deliveries, newest first (``since``/``until``: creation time)."""
    get_workspace_endpoint(caller.session, caller.workspace_id, webhook_id)
    selection = DeliveryFilter(
        workspace_id=caller.workspace_id,
        endpoint_id=webhook_id,
        statuses=tuple(status or ()),
        event_types=tuple(type or ()),
        since=since,
        until=until,
    )
    filters = {
        "endpoint": webhook_id,
        "status": sorted(status or ()),
        "type": sorted(type or ()),
        "since": since,
        "until": until,
    }
    after = cursor.decode(cursor_, filters, prefix=ids.DELIVERY)
    page = delivery_page(caller.session, selection, limit=limit, after=after)
    next_cursor = cursor.encode(page.next_cursor, filters) if page.next_cursor else None
    rows = [wire(delivery_of(d)) for d in page.rows]
    return caller.page(rows, limit=limit, next_cursor=next_cursor)


@router.get(
    "/deliveries/{delivery_id}",
    response_model=Envelope[DeliveryDetail],
    summary="Read a delivery with every attempt",
)
def get_delivery_detail(caller: Reader, webhook_id: WebhookId, delivery_id: DeliveryId) -> Response:
    """The delivery and its attempts: request headers (never a secret), response status,
    headers and body as stored, duration, error kind."""
    delivery = _delivery(caller, webhook_id, delivery_id)
    attempts = delivery_attempts(caller.session, delivery_id)
    return caller.ok(wire(delivery_detail_of(delivery, attempts)))


@router.post(
    "/deliveries/{delivery_id}/replay",
    response_model=Envelope[DeliveryReplayed],
    summary="Replay one delivery",
)
def replay_one(caller: Writer, webhook_id: WebhookId, delivery_id: DeliveryId) -> Response:
    """Re-open the same delivery (same ``webhook-id``; attempts continue their numbers).
    Already pending: nothing changes (``reopened`` false). 409 if the endpoint is disabled."""

    def work() -> tuple[int, object]:
        context = caller.context
        with caller.writing():
            _delivery(caller, webhook_id, delivery_id)
            outcome = replay_delivery(caller.session, delivery_id, now=context.clock())
        if outcome.reopened:
            caller.ring([delivery_id])
        caller.session.expire_all()
        delivery = get_delivery(caller.session, delivery_id)
        body = DeliveryReplayed(reopened=outcome.reopened, delivery=delivery_of(delivery))
        return 200, wire(body)

    return caller.respond(work)


@router.post(
    "/replay",
    status_code=202,
    response_model=Envelope[ReplayRunOut],
    responses={200: {"model": Envelope[BulkPreviewOut], "description": "A dry run."}},
    summary="Replay many deliveries (in the background)",
)
def replay_many(
    caller: Writer, webhook_id: WebhookId, body: BulkReplayRequest | None = None
) -> Response:
    """Re-open the endpoint's deliveries that match, in batches, in the background:
    202 with a replay to follow at ``GET …/replays/{id}``. ``dryRun``: 200 with the
    count and the newest few, nothing changed."""
    request = body or BulkReplayRequest()

    def work() -> tuple[int, object]:
        context = caller.context
        with caller.writing():
            get_workspace_endpoint(caller.session, caller.workspace_id, webhook_id)
            selection = bulk_selection(
                caller.session,
                endpoint_id=webhook_id,
                statuses=request.status,
                since=request.since,
                until=request.until,
                event_types=request.type,
            )
            if request.dry_run:
                preview = preview_bulk(caller.session, selection)
                out = BulkPreviewOut(
                    dry_run=True,
                    selected=preview.matched,
                    sample=[delivery_of(d) for d in preview.sample],
                )
                return 200, wire(out)
            selected = count_deliveries(caller.session, selection)
            now = context.clock()
            run = start_run(
                caller.session,
                workspace_id=caller.workspace_id,
                selection=selection,
                selected=selected,
                now=now,
            )
            view = run_of(run, run_status(run, now=now))
        context.replays.submit(run.id, selection)
        return 202, wire(view)

    return caller.respond(work)


@router.get(
    "/replays/{replay_id}", response_model=Envelope[ReplayRunOut], summary="Follow a replay"
)
def get_replay(caller: Reader, webhook_id: WebhookId, replay_id: ReplayId) -> Response:
    """How far a bulk replay got (any API process can answer: progress is in the database)."""
    get_workspace_endpoint(caller.session, caller.workspace_id, webhook_id)
    run = get_run(caller.session, caller.workspace_id, webhook_id, replay_id)
    return caller.ok(wire(run_of(run, run_status(run, now=caller.context.clock()))))
