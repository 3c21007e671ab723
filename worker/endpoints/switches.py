"""Switching an endpoint off and on: disable and enable, pause and resume.

Disabled vs paused: a *disabled* endpoint gets nothing; deliveries created or coming
due meanwhile end ``skipped`` and can be replayed once it is enabled again. A *paused*
endpoint keeps its deliveries pending without spending their attempts, and they go out
by themselves after ``resume``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from outbox.database import lock_for_write
from outbox.models import Delivery, DeliveryStatus
from worker.endpoints.registry import BATCH_SIZE, lock_endpoint
from worker.policy import circuit, notices
from worker.policy.admission import Hold

OPERATOR_REASON = "disabled by an operator"
"""``disabled_reason`` when ``endpoints disable`` is given no reason."""


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
    endpoint = lock_endpoint(session, endpoint_id)
    if not endpoint.enabled:
        return False
    circuit.disable(endpoint, reason or OPERATOR_REASON, now=now)
    if notify:
        notices.endpoint_disabled(session, endpoint, now=now)
    return True


def enable_endpoint(session: Session, endpoint_id: str, *, now: datetime) -> bool:
    """Enable the endpoint with a clean failure record (so neither the circuit breaker
    nor the automatic disabling after days of failures carries the old streak over);
    False if it already was enabled. ``disabled_at`` is kept: when it was last disabled."""
    endpoint = lock_endpoint(session, endpoint_id)
    if endpoint.enabled:
        return False
    endpoint.enabled = True
    endpoint.disabled_reason = None
    circuit.clear_failures(endpoint)
    endpoint.updated_at = now
    return True


def set_paused(session: Session, endpoint_id: str, paused: bool, *, now: datetime) -> bool:
    """Pause or resume; False if the endpoint already was in that state."""
    endpoint = lock_endpoint(session, endpoint_id)
    if endpoint.paused == paused:
        return False
    endpoint.paused = paused
    endpoint.updated_at = now
    return True


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
                        Delivery.held_by == Hold.PAUSED,
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


def resume_endpoint(
    sessions: sessionmaker[Session], endpoint_id: str, *, now: datetime
) -> list[str] | None:
    """Resume a paused endpoint and make what its pause held due now; returns the ids
    released, to be rung (``None``: it was not paused)."""
    with sessions() as session, session.begin():
        if not set_paused(session, endpoint_id, False, now=now):
            return None
    return release_paused(sessions, endpoint_id, now=now)
