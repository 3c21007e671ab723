"""Retention: delete finished history older than a cut-off, a small batch at a time.

What goes: deliveries that finished (succeeded, failed, skipped) before the cut-off with
their attempts, then events that were dispatched before the cut-off and have no
delivery left. What never goes: a pending delivery, an event still waiting in the
outbox, or an event that still has a delivery (the row a replay would re-open).

Each batch is one short transaction that locks only the rows it deletes (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL, so it never waits on a worker or a replay and several
pollers can prune at once), so the hot tables are never locked for long. The same code
runs from ``catentio-webhooks prune`` and, when ``CATENTIO_RETENTION`` is set, from the
poller's loop a little at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, and_, delete, exists, func, not_, select
from sqlalchemy.orm import Session, sessionmaker

from outbox import ids
from outbox.clock import Clock, utcnow
from outbox.database import lock_for_write, skip_locked
from outbox.idtime import id_floor
from outbox.models import FINISHED_STATUSES, Attempt, Delivery, Event

log = structlog.get_logger(__name__)

DEFAULT_BATCH_SIZE = 500
"""Rows deleted per transaction."""

DEFAULT_INTERVAL = 60.0
"""Seconds between two retention runs of the poller."""

DEFAULT_BUDGET = 1.0
"""Seconds one poller retention run may spend before it yields back to polling."""


@dataclass(frozen=True)
class PruneCounts:
    """Rows deleted (or, for a dry run, that would be)."""

    deliveries: int = 0
    attempts: int = 0
    events: int = 0

    def __add__(self, other: PruneCounts) -> PruneCounts:
        return PruneCounts(
            self.deliveries + other.deliveries,
            self.attempts + other.attempts,
            self.events + other.events,
        )


def _finished_before(cutoff: datetime) -> ColumnElement[bool]:
    return and_(
        Delivery.status.in_(FINISHED_STATUSES),
        Delivery.completed_at < cutoff,
    )


def _event_done_before(cutoff: datetime) -> ColumnElement[bool]:
    return and_(
        Event.id < id_floor(ids.EVENT, cutoff),
        Event.dispatched_at.is_not(None),
        Event.dispatched_at < cutoff,
    )


def count_prunable(session: Session, cutoff: datetime) -> PruneCounts:
    """What :func:`prune` would delete for ``cutoff`` (the dry run)."""
    finished = _finished_before(cutoff)
    deliveries = session.scalar(select(func.count()).select_from(Delivery).where(finished))
    attempts = session.scalar(
        select(func.count())
        .select_from(Attempt)
        .join(Delivery, Delivery.id == Attempt.delivery_id)
        .where(finished)
    )
    kept = exists().where(Delivery.event_id == Event.id, not_(finished))
    events = session.scalar(
        select(func.count()).select_from(Event).where(_event_done_before(cutoff), not_(kept))
    )
    return PruneCounts(int(deliveries or 0), int(attempts or 0), int(events or 0))


def prune_deliveries_batch(session: Session, cutoff: datetime, batch_size: int) -> PruneCounts:
    """Delete up to ``batch_size`` deliveries finished before ``cutoff``, and their
    attempts, in the caller's transaction."""
    lock_for_write(session)
    finished = _finished_before(cutoff)
    query = select(Delivery.id).where(finished).order_by(Delivery.completed_at).limit(batch_size)
    batch = list(session.scalars(skip_locked(session, query)))
    if not batch:
        return PruneCounts()
    attempts = session.execute(delete(Attempt).where(Attempt.delivery_id.in_(batch)))
    deliveries = session.execute(delete(Delivery).where(Delivery.id.in_(batch), finished))
    return PruneCounts(
        deliveries=deliveries.rowcount,  # type: ignore[attr-defined]
        attempts=attempts.rowcount,  # type: ignore[attr-defined]
    )


def prune_events_batch(
    session: Session, cutoff: datetime, batch_size: int, after: str
) -> tuple[int, str | None]:
    """Delete up to ``batch_size`` dispatched events older than ``cutoff`` with no
    delivery left, looking at ids after ``after``. Returns (deleted, last id looked at;
    None when there is nothing further)."""
    lock_for_write(session)
    no_delivery = ~exists().where(Delivery.event_id == Event.id)
    query = (
        select(Event.id)
        .where(_event_done_before(cutoff), Event.id > after)
        .order_by(Event.id)
        .limit(batch_size)
    )
    looked = list(session.scalars(query))
    if not looked:
        return 0, None
    locked = select(Event.id).where(Event.id.in_(looked), no_delivery)
    doomed = list(session.scalars(skip_locked(session, locked)))
    deleted = 0
    if doomed:
        result = session.execute(delete(Event).where(Event.id.in_(doomed), no_delivery))
        deleted = result.rowcount  # type: ignore[attr-defined]
    return deleted, looked[-1]


def prune(
    session_factory: sessionmaker[Session],
    *,
    cutoff: datetime,
    batch_size: int = DEFAULT_BATCH_SIZE,
    budget: float | None = None,
    progress: Callable[[PruneCounts], None] | None = None,
) -> tuple[PruneCounts, bool]:
    """Delete finished history older than ``cutoff``, one short transaction per batch.

    ``progress`` is called after each batch with what it deleted. With a ``budget`` (in
    seconds) it stops after the batch that exceeds it. Returns the totals and whether
    everything prunable was pruned (False: stopped by the budget, run again).
    """
    started = time.monotonic()
    total = PruneCounts()

    def over_budget() -> bool:
        return budget is not None and time.monotonic() - started > budget

    while True:
        with session_factory() as session, session.begin():
            counts = prune_deliveries_batch(session, cutoff, batch_size)
        total += counts
        if progress is not None and counts.deliveries:
            progress(counts)
        if counts.deliveries == 0:
            break
        if over_budget():
            return total, False
    after = ""
    while True:
        with session_factory() as session, session.begin():
            deleted, last = prune_events_batch(session, cutoff, batch_size, after)
        if last is None:
            break
        after = last
        counts = PruneCounts(events=deleted)
        total += counts
        if progress is not None:
            progress(counts)
        if over_budget():
            return total, False
    return total, True


@dataclass
class Retention:
    """Retention on a schedule, for the poller: every ``interval`` seconds, prune what
    is older than ``older_than`` for at most ``budget`` seconds."""

    session_factory: sessionmaker[Session]
    older_than: timedelta
    interval: float = DEFAULT_INTERVAL
    budget: float = DEFAULT_BUDGET
    batch_size: int = DEFAULT_BATCH_SIZE
    clock: Clock = utcnow
    _next_run: float = field(default=0.0, repr=False)

    def run_if_due(self) -> PruneCounts | None:
        """Prune if the interval has passed since the last run; None if it was not due."""
        now = time.monotonic()
        if now < self._next_run:
            return None
        self._next_run = now + self.interval
        counts, _finished = prune(
            self.session_factory,
            cutoff=self.clock() - self.older_than,
            batch_size=self.batch_size,
            budget=self.budget,
        )
        if counts != PruneCounts():
            log.info(
                "outbox.pruned",
                deliveries=counts.deliveries,
                attempts=counts.attempts,
                events=counts.events,
            )
        return counts
