"""Changing an endpoint after it was registered: disable, enable, pause, update, delete.

Disabled vs paused: a *disabled* endpoint gets nothing; deliveries created or coming
due meanwhile end ``skipped`` and can be replayed once it is enabled again. A *paused*
endpoint keeps its deliveries pending without spending their attempts, and they go out
by themselves after ``resume``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from outbox.database import lock_for_write
from outbox.errors import Conflict, ValidationError
from outbox.models import Attempt, Delivery, DeliveryStatus, Endpoint
from outbox.validation import check_event_filter
from worker import notices
from worker.addresses import IPNetwork
from worker.endpoints import get_endpoint
from worker.limits import check_rate_limit
from worker.request import check_custom_headers
from worker.settings import DEFAULT_MAX_HEADER_BYTES
from worker.urls import check_endpoint_url, check_registrable

OPERATOR_REASON = "disabled by an operator"
"""``disabled_reason`` when ``endpoints disable`` is given no reason."""

BATCH_SIZE = 500
"""Deliveries changed or deleted per transaction."""


def _locked(session: Session, endpoint_id: str) -> Endpoint:
    """The endpoint, its row locked for the rest of the transaction."""
    lock_for_write(session)
    endpoint = session.get(Endpoint, endpoint_id, with_for_update=True)
    if endpoint is None:
        get_endpoint(session, endpoint_id)  # raises EndpointNotFound
    assert endpoint is not None
    return endpoint


def count_deliveries(session: Session, endpoint_id: str, status: str) -> int:
    """How many of the endpoint's deliveries have ``status``."""
    query = select(func.count()).where(
        Delivery.endpoint_id == endpoint_id, Delivery.status == status
    )
    return int(session.scalar(query) or 0)


def disable_endpoint(
    session: Session,
    endpoint_id: str,
    *,
    reason: str | None,
    now: datetime,
    notify: bool = True,
) -> bool:
    """Disable the endpoint; False if it already was (its reason is kept then). With
    ``notify`` (``CATENTIO_OPERATIONAL_EVENTS``), ``webhook.endpoint.disabled`` is
    published to its workspace in the same transaction, as for an automatic disable."""
    endpoint = _locked(session, endpoint_id)
    if not endpoint.enabled:
        return False
    endpoint.enabled = False
    endpoint.disabled_reason = reason or OPERATOR_REASON
    endpoint.disabled_at = now
    endpoint.probe_delivery_id = None
    endpoint.probe_until = None
    endpoint.updated_at = now
    if notify:
        notices.endpoint_disabled(session, endpoint, now=now)
    return True


def enable_endpoint(session: Session, endpoint_id: str, *, now: datetime) -> bool:
    """Enable the endpoint with a clean failure record (so neither the circuit breaker
    nor the automatic disabling after days of failures carries the old streak over);
    False if it already was enabled. ``disabled_at`` is kept: when it was last disabled."""
    endpoint = _locked(session, endpoint_id)
    if endpoint.enabled:
        return False
    endpoint.enabled = True
    endpoint.disabled_reason = None
    endpoint.consecutive_failures = 0
    endpoint.failing_since = None
    endpoint.probe_delivery_id = None
    endpoint.probe_until = None
    endpoint.updated_at = now
    return True


def set_paused(session: Session, endpoint_id: str, paused: bool, *, now: datetime) -> bool:
    """Pause or resume; False if the endpoint already was in that state."""
    endpoint = _locked(session, endpoint_id)
    if endpoint.paused == paused:
        return False
    endpoint.paused = paused
    endpoint.updated_at = now
    return True


@dataclass(frozen=True, kw_only=True)
class EndpointChanges:
    """What ``endpoints update`` changes; ``None`` leaves a field as it is."""

    url: str | None = None
    event_types: Sequence[str] | None = None
    headers: Mapping[str, str] | None = None
    description: str | None = None
    # 0 clears the endpoint's own limit (the settings' default applies again).
    max_concurrency: int | None = None
    rate_limit: float | None = None

    def empty(self) -> bool:
        """Whether nothing would change."""
        fields = (
            self.url,
            self.event_types,
            self.headers,
            self.description,
            self.max_concurrency,
            self.rate_limit,
        )
        return all(v is None for v in fields)


def update_endpoint(
    session: Session,
    endpoint_id: str,
    changes: EndpointChanges,
    *,
    now: datetime,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    allowed_networks: Iterable[IPNetwork] = (),
) -> Endpoint:
    """Validate and apply ``changes``. New event filters apply to events fanned out from
    now on; deliveries already made keep going to the endpoint's (new) URL."""
    if changes.empty():
        raise ValidationError(
            "nothing to update: give --url, --events, --header, --description, "
            "--max-concurrency or --rate-limit"
        )
    endpoint = _locked(session, endpoint_id)
    if changes.url is not None:
        check_endpoint_url(changes.url)
        check_registrable(changes.url, allowed_networks=allowed_networks)
        endpoint.url = changes.url
    if changes.event_types is not None:
        if not changes.event_types:
            raise ValidationError("an endpoint needs at least one event type filter (or '*')")
        endpoint.event_types = sorted({check_event_filter(t) for t in changes.event_types})
    if changes.headers is not None:
        endpoint.headers = check_custom_headers(changes.headers, max_bytes=max_header_bytes)
    if changes.description is not None:
        endpoint.description = changes.description or None
    if changes.max_concurrency is not None:
        if changes.max_concurrency < 0:
            raise ValidationError("max concurrency must be at least 1 (0 restores the default)")
        endpoint.max_concurrency = changes.max_concurrency or None
    if changes.rate_limit is not None:
        if changes.rate_limit != 0:
            check_rate_limit(changes.rate_limit, what="rate limit (0 removes it)")
        endpoint.rate_limit = changes.rate_limit or None
        endpoint.rate_tat = None
    endpoint.updated_at = now
    return endpoint


def delete_endpoint(
    sessions: sessionmaker[Session],
    endpoint_id: str,
    *,
    force: bool,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete the endpoint, its deliveries and their attempts; returns how many
    deliveries went. Deliveries go in batches, each its own short transaction.

    Refused with ``Conflict`` while deliveries are pending, unless ``force``: they would
    never be sent.
    """
    with sessions() as session:
        get_endpoint(session, endpoint_id)
        pending = count_deliveries(session, endpoint_id, DeliveryStatus.PENDING)
    if pending and not force:
        raise Conflict(
            f"endpoint {endpoint_id} has {pending} pending deliveries that would never be "
            "sent; disable it and let them finish, or delete with --force"
        )
    deleted = 0
    while True:
        with sessions() as session, session.begin():
            lock_for_write(session)
            batch = list(
                session.scalars(
                    select(Delivery.id).where(Delivery.endpoint_id == endpoint_id).limit(BATCH_SIZE)
                )
            )
            if not batch:
                # Anything fanned out meanwhile goes with the endpoint (ON DELETE CASCADE).
                session.execute(delete(Endpoint).where(Endpoint.id == endpoint_id))
                return deleted
            session.execute(delete(Attempt).where(Attempt.delivery_id.in_(batch)))
            session.execute(delete(Delivery).where(Delivery.id.in_(batch)))
        deleted += len(batch)
        if progress is not None:
            progress(len(batch))


PAUSED_HOLD = "paused"
"""``Delivery.held_by`` of a delivery waiting for its paused endpoint."""


def release_paused(
    sessions: sessionmaker[Session], endpoint_id: str, *, now: datetime
) -> list[str]:
    """Make the deliveries held by the endpoint's pause due now (batch by batch);
    returns their ids, to be rung. A hold that was not recorded still lifts by itself
    at its next re-check."""
    released: list[str] = []
    last = ""
    while True:
        with sessions() as session, session.begin():
            lock_for_write(session)
            batch = list(
                session.scalars(
                    select(Delivery.id)
                    .where(
                        Delivery.endpoint_id == endpoint_id,
                        Delivery.held_by == PAUSED_HOLD,
                        Delivery.status == DeliveryStatus.PENDING,
                        Delivery.id > last,
                    )
                    .order_by(Delivery.id)
                    .limit(BATCH_SIZE)
                )
            )
            if not batch:
                return released
            unleased = or_(Delivery.lease_until.is_(None), Delivery.lease_until < now)
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(batch), Delivery.status == DeliveryStatus.PENDING, unleased)
                .values(next_attempt_at=now, rung_at=now, updated_at=now)
            )
        released.extend(batch)
        last = batch[-1]
