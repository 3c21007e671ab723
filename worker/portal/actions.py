"""The portal's actions: replay (one delivery, an event, a bulk selection), endpoint
switches, secret rotation and test events.

Each is a POST carrying the session's CSRF token, confirmed in the page before it is
sent, and runs the same domain function as the command line and the API. Each is safe
to send twice: replaying a pending delivery does nothing, a switch already in the
wanted state stays so, and a rotation names the secret it replaces, so a second submit
of the same form is refused instead of rotating again. After acting, the browser is
redirected to the page showing the result (so a reload does not act again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from outbox.database import lock_for_write
from outbox.errors import ValidationError
from outbox.models import DeliveryStatus
from worker.durations import parse_moment
from worker.endpoints.ping import send_test_event
from worker.endpoints.registry import get_workspace_endpoint
from worker.endpoints.rotation import rotate_secret
from worker.endpoints.switches import disable_endpoint, enable_endpoint, resume_endpoint, set_paused
from worker.errors import BrokerUnavailable, Conflict
from worker.ops.history import count_deliveries
from worker.ops.replay import bulk_selection, replay_delivery, replay_event
from worker.ops.replay_runs import start_run
from worker.ops.tenancy import own_delivery, own_event
from worker.portal.access import check_write, current_session, portal_path
from worker.portal.context import PortalContext, portal_of
from worker.portal.pages import common, secret_version
from worker.portal.tokens import Session

log = structlog.get_logger("worker.portal.actions")

BULK_STATUSES = (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
"""What a bulk replay may re-open."""


def _begin(request: Request, form: Mapping[str, str]) -> tuple[PortalContext, Session]:
    session = current_session(request)
    check_write(request, session, form)
    return portal_of(request), session


def _ring(portal: PortalContext, delivery_ids: Sequence[str]) -> None:
    if portal.ring is None or not delivery_ids:
        return
    try:
        portal.ring(list(delivery_ids))
    except BrokerUnavailable as exc:
        # The rows are committed and pending: the sweeper rings them shortly.
        log.warning("portal.ring_failed", error=str(exc), deliveries=len(delivery_ids))


def _back(request: Request, path: str, notice: str) -> Response:
    return RedirectResponse(
        f"{portal_path(request)}{path}?{urlencode({'notice': notice})}", status_code=303
    )


def replay_delivery_action(request: Request, form: Mapping[str, str]) -> Response:
    """``POST /deliveries/{id}/replay``."""
    portal, session = _begin(request, form)
    delivery_id = request.path_params["delivery_id"]
    with portal.sessions() as db, db.begin():
        lock_for_write(db)  # SQLite: take the write lock before the first read
        own_delivery(db, session.grant.workspace_id, delivery_id)
        outcome = replay_delivery(db, delivery_id, now=portal.clock())
    if outcome.reopened:
        _ring(portal, [delivery_id])
    log.info("portal.replay_delivery", delivery_id=delivery_id, reopened=outcome.reopened)
    return _back(
        request, f"deliveries/{delivery_id}", "replayed" if outcome.reopened else "already-pending"
    )


def replay_event_action(request: Request, form: Mapping[str, str]) -> Response:
    """``POST /events/{id}/replay``."""
    portal, session = _begin(request, form)
    event_id = request.path_params["event_id"]
    with portal.sessions() as db, db.begin():
        lock_for_write(db)  # SQLite: take the write lock before the first read
        own_event(db, session.grant.workspace_id, event_id)
        outcome = replay_event(db, event_id, now=portal.clock())
    _ring(portal, outcome.to_ring)
    log.info("portal.replay_event", event_id=event_id, reopened=len(outcome.to_ring))
    return _back(
        request, f"events/{event_id}", "event-replayed" if outcome.to_ring else "already-pending"
    )


def _switch(request: Request, form: Mapping[str, str], action: str) -> Response:
    portal, session = _begin(request, form)
    endpoint_id = request.path_params["endpoint_id"]
    now = portal.clock()
    with portal.sessions() as db, db.begin():
        lock_for_write(db)  # SQLite: take the write lock before the first read
        get_workspace_endpoint(db, session.grant.workspace_id, endpoint_id)
        if action == "disable":
            reason = form.get("reason", "").strip()[:200] or "disabled in the portal"
            disable_endpoint(
                db, endpoint_id, reason=reason, now=now, notify=portal.settings.operational_events
            )
        elif action == "enable":
            enable_endpoint(db, endpoint_id, now=now)
        elif action == "pause":
            set_paused(db, endpoint_id, True, now=now)
    if action == "resume":
        _ring(portal, resume_endpoint(portal.sessions, endpoint_id, now=now) or [])
    log.info("portal.endpoint_switch", endpoint_id=endpoint_id, action=action)
    return _back(request, f"endpoints/{endpoint_id}", f"{action}d")


def enable_action(request: Request, form: Mapping[str, str]) -> Response:
    """``POST /endpoints/{id}/enable``."""
    return _switch(request, form, "enable")


def disable_action(request: Request, form: Mapping[str, str]) -> Response:
    """``POST /endpoints/{id}/disable``."""
    return _switch(request, form, "disable")


def pause_action(request: Request, form: Mapping[str, str]) -> Response:
    """``POST /endpoints/{id}/pause``."""
    return _switch(request, form, "pause")


def resume_action(request: Request, form: Mapping[str, str]) -> Response:
    """``POST /endpoints/{id}/resume``."""
    return _switch(request, form, "resume")


def rotate_action(request: Request, form: Mapping[str, str]) -> Response:
    """``POST /endpoints/{id}/rotate-secret``: the new secret is shown once, here."""
    portal, session = _begin(request, form)
    endpoint_id = request.path_params["endpoint_id"]
    if portal.box is None:
        raise Conflict("this portal cannot rotate secrets (it was started without the key)")
    with portal.sessions() as db, db.begin():
        lock_for_write(db)  # SQLite: take the write lock before the first read
        endpoint = get_workspace_endpoint(db, session.grant.workspace_id, endpoint_id)
        if form.get("version") != secret_version(endpoint):
            raise Conflict(
                "the secret was rotated since this page was loaded; open the endpoint again "
                "and rotate from there if you still want another secret"
            )
        rotation = rotate_secret(db, portal.box, endpoint_id, now=portal.clock())
        replaced_until = rotation.replaced_until
        scheme = rotation.scheme
    log.info("portal.rotate_secret", endpoint_id=endpoint_id)
    context = {
        **common(request, session, "endpoints"),
        "endpoint_id": endpoint_id,
        "secret": rotation.secret,
        "scheme": scheme,
        "replaced_until": replaced_until,
    }
    return portal.renderer.page(request, "secret.html", context)


def test_action(request: Request, form: Mapping[str, str]) -> Response:
    """``POST /endpoints/{id}/test``: a ``webhook.test`` event to this endpoint only."""
    portal, session = _begin(request, form)
    endpoint_id = request.path_params["endpoint_id"]
    with portal.sessions() as db, db.begin():
        lock_for_write(db)  # SQLite: take the write lock before the first read
        endpoint = get_workspace_endpoint(db, session.grant.workspace_id, endpoint_id)
        sent = send_test_event(db, endpoint, now=portal.clock())
    _ring(portal, [sent.delivery_id])
    log.info("portal.test_event", endpoint_id=endpoint_id, delivery_id=sent.delivery_id)
    return _back(request, f"deliveries/{sent.delivery_id}", "test-sent")


def bulk_replay_action(request: Request, form: Mapping[str, str]) -> Response:
    """``POST /endpoints/{id}/replay``: ``step=count`` shows how many deliveries the
    selection holds and asks to confirm; ``step=run`` starts the replay."""
    portal, session = _begin(request, form)
    endpoint_id = request.path_params["endpoint_id"]
    now = portal.clock()
    statuses = tuple(s for s in BULK_STATUSES if form.get(f"status_{s}"))
    fields = {
        "since": form.get("since", "").strip()[:100],
        "until": form.get("until", "").strip()[:100],
    }
    moments = {}
    for name, text in fields.items():
        try:
            moments[name] = parse_moment(text, now=now) if text else None
        except ValidationError as exc:
            raise ValidationError(f"{name}: {exc}") from None
    running = form.get("step") == "run"
    with portal.sessions() as db, db.begin():
        if running:
            lock_for_write(db)  # SQLite: take the write lock before the first read
        get_workspace_endpoint(db, session.grant.workspace_id, endpoint_id)
        selection = bulk_selection(
            db,
            endpoint_id=endpoint_id,
            statuses=statuses,
            since=moments["since"],
            until=moments["until"],
        )
        selected = count_deliveries(db, selection)
        # The same recorded run as POST /v1/webhooks/{id}/replay: any API process can
        # report its progress, read from its row.
        run_id = (
            start_run(
                db,
                workspace_id=session.grant.workspace_id,
                selection=selection,
                selected=selected,
                now=now,
            ).id
            if running
            else None
        )
    if run_id is None:
        context = {
            **common(request, session, "endpoints"),
            "endpoint_id": endpoint_id,
            "selected": selected,
            "statuses": statuses,
            "fields": fields,
        }
        return portal.renderer.page(request, "bulk_confirm.html", context)
    portal.replays.submit(run_id, selection)
    log.info("portal.bulk_replay", endpoint_id=endpoint_id, run_id=run_id, selected=selected)
    return RedirectResponse(
        f"{portal_path(request)}endpoints/{endpoint_id}/replays/{run_id}", status_code=303
    )


ROUTES = [
    ("/deliveries/{delivery_id}/replay", replay_delivery_action, "replay_delivery"),
    ("/events/{event_id}/replay", replay_event_action, "replay_event"),
    ("/endpoints/{endpoint_id}/enable", enable_action, "enable"),
    ("/endpoints/{endpoint_id}/disable", disable_action, "disable"),
    ("/endpoints/{endpoint_id}/pause", pause_action, "pause"),
    ("/endpoints/{endpoint_id}/resume", resume_action, "resume"),
    ("/endpoints/{endpoint_id}/rotate-secret", rotate_action, "rotate_secret"),
    ("/endpoints/{endpoint_id}/test", test_action, "test"),
    ("/endpoints/{endpoint_id}/replay", bulk_replay_action, "bulk_replay"),
]
"""(path, handler, name) of every action."""
