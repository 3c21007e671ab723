"""The pages: endpoints, deliveries, one delivery, events, one event.

Every query is confined to the session's workspace; an id from another workspace is
answered 404 exactly like a missing one. Lists are keyset pages (newest first, the
last id as the cursor), never a count of the whole history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse

from outbox.errors import ValidationError
from outbox.models import Attempt, Delivery, DeliveryStatus, Endpoint, Event
from worker.durations import parse_moment
from worker.endpoints.registry import deliveries_by_status, get_workspace_endpoint, list_endpoints
from worker.ops.activity import endpoint_activity
from worker.ops.history import (
    DeliveryFilter,
    EventFilter,
    delivery_attempts,
    delivery_page,
    event_deliveries,
    event_page,
    fanout_counts,
)
from worker.ops.tenancy import own_delivery, own_event
from worker.ops.timeline import attempt_timeline
from worker.policy.circuit import is_open
from worker.portal.access import CSRF_FIELD, current_session, portal_path
from worker.portal.chart import Chart, build_chart
from worker.portal.context import portal_of
from worker.portal.replays import replay_progress
from worker.portal.tokens import Session

PAGE_SIZE = 50
"""Rows per page of deliveries and events."""

POLL_SECONDS = 2
"""How often a page with deliveries in flight refreshes itself."""

NOTICES = {
    "replayed": "Replay queued: the new attempt appears below as soon as it is made.",
    "already-pending": "Nothing to do: it is already waiting to be sent.",
    "event-replayed": "Replay queued for this event's deliveries.",
    "test-sent": "Test event sent to this endpoint only.",
    "enabled": "Endpoint enabled.",
    "disabled": "Endpoint disabled: new deliveries are kept as skipped.",
    "paused": "Endpoint paused: deliveries wait without spending attempts.",
    "resumed": "Endpoint resumed: held deliveries go out now.",
}
"""What a page says after an action redirected to it (only these fixed texts: a link
cannot make the portal say something else)."""


def notice(request: Request) -> str | None:
    """The fixed notice named by the ``notice`` query parameter, if any."""
    return NOTICES.get(request.query_params.get("notice", ""))


def common(request: Request, session: Session, section: str) -> dict[str, Any]:
    """What the layout of every page needs."""
    return {
        "base": portal_path(request),
        "csrf": portal_of(request).tokens.csrf_token(session),
        "csrf_field": CSRF_FIELD,
        "workspace": session.grant.workspace_id,
        "read_only": session.grant.read_only,
        "session_expires": session.grant.expires_at,
        "section": section,
        "poll_seconds": POLL_SECONDS,
    }


def secret_version(endpoint: Endpoint) -> str:
    """Names the endpoint's current signing secret (without revealing it), so that a
    rotation form submitted twice rotates once."""
    newest = endpoint.secrets[0]["secret"] if endpoint.secrets else ""
    return hashlib.sha256(str(newest).encode()).hexdigest()[:16]


def endpoint_state(endpoint: Endpoint, circuit_threshold: int) -> tuple[str, str]:
    """(state name, what it means) for people."""
    if not endpoint.enabled:
        return "disabled", endpoint.disabled_reason or "disabled"
    if endpoint.paused:
        return "paused", "deliveries wait without spending attempts"
    if is_open(endpoint, circuit_threshold):
        return (
            "circuit open",
            f"{endpoint.consecutive_failures} failures in a row: one probe at a time",
        )
    if endpoint.consecutive_failures:
        return "failing", f"{endpoint.consecutive_failures} failures in a row"
    return "enabled", "delivering"


@dataclass(frozen=True)
class EndpointRow:
    """An endpoint as the list shows it."""

    endpoint: Endpoint
    state: str
    state_note: str
    success_hour: float | None
    success_day: float | None
    attempts_hour: int
    attempts_day: int
    pending: int
    in_flight: int
    chart: Chart


def _endpoint_rows(request: Request, endpoints: list[Endpoint]) -> list[EndpointRow]:
    portal = portal_of(request)
    now = portal.clock()
    ids = [e.id for e in endpoints]
    with portal.sessions() as db:
        activity = endpoint_activity(db, ids, now=now)
        timelines = attempt_timeline(db, ids, now=now)
    rows = []
    for endpoint in endpoints:
        state, note = endpoint_state(endpoint, portal.settings.circuit_threshold)
        figures = activity[endpoint.id]
        rows.append(
            EndpointRow(
                endpoint=endpoint,
                state=state,
                state_note=note,
                success_hour=figures.success_rate_hour,
                success_day=figures.success_rate_day,
                attempts_hour=figures.attempts_hour,
                attempts_day=figures.attempts_day,
                pending=figures.pending,
                in_flight=figures.in_flight,
                chart=build_chart(timelines[endpoint.id], now=now, label=endpoint.url),
            )
        )
    return rows


def endpoints_page(request: Request) -> HTMLResponse:
    """``GET /``: the workspace's endpoints, their state, success rates and last day."""
    session = current_session(request)
    portal = portal_of(request)
    with portal.sessions() as db:
        endpoints = list_endpoints(db, workspace_id=session.grant.workspace_id)
    context = {**common(request, session, "endpoints"), "rows": _endpoint_rows(request, endpoints)}
    return portal.renderer.page(request, "endpoints.html", context)


def endpoint_page(request: Request) -> HTMLResponse:
    """``GET /endpoints/{id}``: one endpoint, its chart, its deliveries by status."""
    session = current_session(request)
    portal = portal_of(request)
    endpoint_id = request.path_params["endpoint_id"]
    with portal.sessions() as db:
        endpoint = get_workspace_endpoint(db, session.grant.workspace_id, endpoint_id)
        by_status = deliveries_by_status(db, endpoint_id)
    context = {
        **common(request, session, "endpoints"),
        "row": _endpoint_rows(request, [endpoint])[0],
        "by_status": by_status,
        "statuses": [status.value for status in DeliveryStatus],
        "notice": notice(request),
        "secret_version": secret_version(endpoint),
        "can_rotate": portal.box is not None,
    }
    return portal.renderer.page(request, "endpoint.html", context)


def replay_run_page(request: Request) -> HTMLResponse:
    """``GET /endpoints/{id}/replays/{run}``: a bulk replay's progress bar, refreshing
    itself until the run is done."""
    session = current_session(request)
    portal = portal_of(request)
    endpoint_id = request.path_params["endpoint_id"]
    with portal.sessions() as db:
        run = replay_progress(
            db,
            session.grant.workspace_id,
            endpoint_id,
            request.path_params["run_id"],
            now=portal.clock(),
        )
    context = {**common(request, session, "endpoints"), "run": run, "endpoint_id": endpoint_id}
    if request.headers.get("hx-request") == "true":
        return portal.renderer.fragment(request, "_replay_progress.html", context)
    return portal.renderer.page(request, "replay_run.html", context)


@dataclass(frozen=True, kw_only=True)
class DeliveryRecord:
    """A delivery with its endpoint, its event and every attempt, oldest first."""

    delivery: Delivery
    endpoint: Endpoint
    event: Event
    attempts: list[Attempt]


@dataclass(frozen=True)
class DeliveryQuery:
    """The deliveries page's filters, as typed into its form."""

    status: str = ""
    type: str = ""
    since: str = ""
    until: str = ""
    event: str = ""
    endpoint: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> DeliveryQuery:
        """The filters of a query string (unknown parameters ignored)."""
        return cls(**{name: params.get(name, "").strip()[:200] for name in cls.names()})

    @staticmethod
    def names() -> tuple[str, ...]:
        """The form fields, in order."""
        return ("status", "type", "since", "until", "event", "endpoint")

    def selection(self, workspace_id: str, *, now: datetime) -> DeliveryFilter:
        """The domain filter. Raises ``ValidationError`` naming the field at fault."""
        try:
            since = parse_moment(self.since, now=now) if self.since else None
        except ValidationError as exc:
            raise ValidationError(f"since: {exc}") from None
        try:
            until = parse_moment(self.until, now=now) if self.until else None
        except ValidationError as exc:
            raise ValidationError(f"until: {exc}") from None
        return DeliveryFilter(
            workspace_id=workspace_id,
            endpoint_id=self.endpoint or None,
            event_id=self.event or None,
            event_types=(self.type,) if self.type else (),
            statuses=(self.status,) if self.status else (),
            since=since,
            until=until,
        )

    def query_string(self, **extra: str) -> str:
        """These filters (and ``extra``) as a query string, empty fields left out."""
        values = {n: getattr(self, n) for n in self.names()} | extra
        return urlencode({k: v for k, v in values.items() if v})


def deliveries_page(request: Request) -> HTMLResponse:
    """``GET /deliveries``: filtered, newest first, a keyset page at a time; the table
    refreshes itself while a delivery it shows is still pending."""
    session = current_session(request)
    portal = portal_of(request)
    query = DeliveryQuery.from_params(request.query_params)
    after = request.query_params.get("after") or None
    error = None
    rows: list[Any] = []
    next_cursor = None
    status_code = 200
    with portal.sessions() as db:
        endpoints = {e.id: e for e in list_endpoints(db, workspace_id=session.grant.workspace_id)}
        try:
            selection = query.selection(session.grant.workspace_id, now=portal.clock())
            page = delivery_page(db, selection, limit=PAGE_SIZE, after=after)
            rows, next_cursor = page.rows, page.next_cursor
        except ValidationError as exc:
            error, status_code = str(exc), 400
    context = {
        **common(request, session, "deliveries"),
        "query": query,
        "after": after or "",
        "rows": rows,
        "endpoints": endpoints,
        "next_cursor": next_cursor,
        "error": error,
        "statuses": [status.value for status in DeliveryStatus],
        "live": any(d.status == DeliveryStatus.PENDING for d in rows),
        "self_url": portal_path(request)
        + "deliveries?"
        + query.query_string(**({"after": after} if after else {})),
    }
    if request.headers.get("hx-request") == "true" and error is None:
        return portal.renderer.fragment(request, "_deliveries_table.html", context)
    return portal.renderer.page(request, "deliveries.html", context, status_code=status_code)


def delivery_detail_page(request: Request) -> HTMLResponse:
    """``GET /deliveries/{id}``: one delivery, the body sent, every attempt."""
    session = current_session(request)
    portal = portal_of(request)
    workspace_id = session.grant.workspace_id
    with portal.sessions() as db:
        delivery = own_delivery(db, workspace_id, request.path_params["delivery_id"])
        record = DeliveryRecord(
            delivery=delivery,
            endpoint=get_workspace_endpoint(db, workspace_id, delivery.endpoint_id),
            event=own_event(db, workspace_id, delivery.event_id),
            attempts=delivery_attempts(db, delivery.id),
        )
    context = {
        **common(request, session, "deliveries"),
        "record": record,
        "live": record.delivery.status == DeliveryStatus.PENDING,
        "notice": notice(request),
    }
    if request.headers.get("hx-request") == "true":
        return portal.renderer.fragment(request, "_delivery_attempts.html", context)
    return portal.renderer.page(request, "delivery.html", context)


def events_page(request: Request) -> HTMLResponse:
    """``GET /events``: the outbox feed, newest first, with each event's fan-out."""
    session = current_session(request)
    portal = portal_of(request)
    type_text = request.query_params.get("type", "").strip()[:200]
    after = request.query_params.get("after") or None
    error, rows, next_cursor, counts, status_code = None, [], None, {}, 200
    with portal.sessions() as db:
        try:
            selection = EventFilter(
                workspace_id=session.grant.workspace_id,
                event_types=(type_text,) if type_text else (),
            )
            page = event_page(db, selection, limit=PAGE_SIZE, after=after)
            rows, next_cursor = page.rows, page.next_cursor
            counts = fanout_counts(db, [e.id for e in rows])
        except ValidationError as exc:
            error, status_code = str(exc), 400
    context = {
        **common(request, session, "events"),
        "type": type_text,
        "rows": rows,
        "fanout": counts,
        "next_cursor": next_cursor,
        "error": error,
    }
    return portal.renderer.page(request, "events.html", context, status_code=status_code)


def event_detail_page(request: Request) -> HTMLResponse:
    """``GET /events/{id}``: one event, its exact body and where it went."""
    session = current_session(request)
    portal = portal_of(request)
    with portal.sessions() as db:
        event = own_event(db, session.grant.workspace_id, request.path_params["event_id"])
        fanout = event_deliveries(db, event.id)
    context = {
        **common(request, session, "events"),
        "event": event,
        "fanout": fanout,
        "notice": notice(request),
    }
    return portal.renderer.page(request, "event.html", context)
