"""Operational events: telling a workspace that its endpoint or a delivery gave up.

When an endpoint is disabled or a delivery exhausts its attempts, an event is published
into the outbox of the same workspace, in the same transaction as the change, so the
control plane (and any endpoint subscribed to it) hears about it exactly when it
happened:

``webhook.endpoint.disabled``
    ``{"endpointId", "url", "reason", "disabledAt", "failingSince",
    "consecutiveFailures"}``; ``url`` without its query string, which may carry a token.
``webhook.delivery.exhausted``
    ``{"deliveryId", "eventId", "eventType", "endpointId", "attempts",
    "lastStatusCode", "lastErrorKind"}``.

They are delivered like any other event to the workspace's endpoints subscribed to
them, except to the endpoint they are about (``notice_subject``). A
delivery of a ``webhook.*`` event that exhausts its own attempts publishes nothing
further, so a workspace whose endpoints all fail cannot feed itself a loop.
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.orm import Session

from outbox.envelope import isoformat
from outbox.models import Delivery, Endpoint, Event
from outbox.publish import publish
from worker.fanout.deliveries import Fanned

ENDPOINT_DISABLED = "webhook.endpoint.disabled"
DELIVERY_EXHAUSTED = "webhook.delivery.exhausted"


NOTICE_PREFIX = "webhook."
"""Event types under this prefix are ours: they never cause further notices, and the
poller never fans one out to the endpoint it is about."""


def is_notice(event_type: str) -> bool:
    """Whether ``event_type`` is one of our operational events."""
    return event_type.startswith(NOTICE_PREFIX)


def notice_subject(event: Fanned) -> str | None:
    """The endpoint an operational event is about, which must never receive it: while
    it fails, each notice would fail too (doubling its failures), and once it is back it
    would get a flood of stale news about itself. ``None`` for any other event."""
    if not is_notice(event.type):
        return None
    try:
        data = json.loads(event.body)["data"]["data"]
    except (ValueError, KeyError, TypeError):
        return None
    subject = data.get("endpointId") if isinstance(data, dict) else None
    return subject if isinstance(subject, str) else None


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def endpoint_disabled(session: Session, endpoint: Endpoint, *, now: datetime) -> Event:
    """Publish ``webhook.endpoint.disabled`` for ``endpoint`` (already disabled)."""
    failing_since = endpoint.failing_since
    return publish(
        session,
        workspace_id=endpoint.workspace_id,
        type=ENDPOINT_DISABLED,
        data={
            "endpointId": endpoint.id,
            "url": _without_query(endpoint.url),
            "reason": endpoint.disabled_reason,
            "disabledAt": isoformat(now),
            "failingSince": isoformat(failing_since) if failing_since else None,
            "consecutiveFailures": endpoint.consecutive_failures,
        },
        clock=lambda: now,
    )


def delivery_exhausted(
    session: Session,
    delivery: Delivery,
    *,
    attempts: int,
    status_code: int | None,
    error_kind: str | None,
    now: datetime,
) -> Event | None:
    """Publish ``webhook.delivery.exhausted`` for ``delivery``, unless the delivery
    carried one of our own notices (``None`` then)."""
    if is_notice(delivery.event_type):
        return None
    return publish(
        session,
        workspace_id=delivery.workspace_id,
        type=DELIVERY_EXHAUSTED,
        data={
            "deliveryId": delivery.id,
            "eventId": delivery.event_id,
            "eventType": delivery.event_type,
            "endpointId": delivery.endpoint_id,
            "attempts": attempts,
            "lastStatusCode": status_code,
            "lastErrorKind": error_kind,
        },
        clock=lambda: now,
    )
