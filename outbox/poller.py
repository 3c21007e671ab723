"""The poller: claim waiting events, fan them out to deliveries, ring the bell.

It never imports the broker: it is handed a ``dispatch(delivery_ids)`` callable that
the worker wires to the delivery actor. Deliveries are committed before ``dispatch`` is
called, so a message can never point at a row that does not exist yet; if dispatching
fails, the sweeper rings again later.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Select, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased, sessionmaker

from outbox import ids
from outbox.clock import Clock, utcnow
from outbox.database import lock_for_write
from outbox.models import Delivery, DeliveryStatus, Endpoint, Event, Trigger
from outbox.retention import Retention
from outbox.validation import matches_any

log = structlog.get_logger("outbox.poller")

Dispatch = Callable[[Sequence[str]], None]
"""Asks the workers to look at these deliveries now."""

Waiting = Callable[[], "int | None"]
"""How many messages wait in the broker's queue, not yet fetched (``None``: unknown)."""

DEFAULT_BATCH_SIZE = 200
"""Events claimed per poll transaction."""

DEFAULT_SWEEP_AFTER = timedelta(seconds=30)
"""How long a due, unleased delivery's bell may go unanswered before it is rung again."""

DEFAULT_POLL_INTERVAL = 0.5
"""Longest sleep between polls when the outbox is empty, in seconds."""

DEFAULT_SWEEP_INTERVAL = 10.0
"""Seconds between sweeps."""


@dataclass(frozen=True)
class PollResult:
    """What one poll did."""

    events: int
    deliveries: int
    skipped: int


@dataclass
class Poller:
    """Claims waiting events and turns them into deliveries; sweeps for lost messages."""

    session_factory: sessionmaker[Session]
    dispatch: Dispatch
    batch_size: int = DEFAULT_BATCH_SIZE
    sweep_after: timedelta = DEFAULT_SWEEP_AFTER
    clock: Clock = utcnow
    # Finished history older than this is pruned from the loop, a little at a time.
    retention: timedelta | None = None
    # The broker's queue length, so that what may still be queued is not rung again.
    waiting: Waiting | None = None
    _drained_at: datetime | None = field(default=None, init=False, repr=False)

    def poll_once(self) -> PollResult:
        """Fan out one batch of waiting events, commit, then dispatch the new deliveries.

        On PostgreSQL the batch is claimed with ``FOR UPDATE SKIP LOCKED``, so several
        pollers share the outbox without waiting on or repeating each other; on SQLite the
        transaction holds the write lock (``BEGIN IMMEDIATE``). The unique (event,
        endpoint) constraint is the last line of defence against a duplicate delivery.
        """
        now = self.clock()
        with self.session_factory() as session, session.begin():
            lock_for_write(session)
            events = list(session.scalars(self._waiting_events(session)))
            if not events:
                return PollResult(0, 0, 0)
            by_workspace = self._endpoints_for(session, {e.workspace_id for e in events})
            rows: list[dict[str, Any]] = []
            for event in events:
                for endpoint in by_workspace.get(event.workspace_id, ()):
                    if matches_any(endpoint.event_types, event.type):
                        rows.append(_delivery_row(event, endpoint, now))
            created: list[tuple[str, str]] = []
            if rows:
                insert = _insert_ignoring_duplicates(session, rows)
                created = [(r.id, r.status) for r in session.execute(insert)]
            session.execute(
                update(Event).where(Event.id.in_([e.id for e in events])).values(dispatched_at=now)
            )
        pending = [d for d, status in created if status == DeliveryStatus.PENDING]
        log.info(
            "outbox.fanned_out",
            events=len(events),
            deliveries=len(pending),
            skipped=len(created) - len(pending),
        )
        self._ring(pending)
        return PollResult(len(events), len(pending), len(created) - len(pending))

    def sweep_once(self, limit: int = 1000) -> int:
        """Re-ring deliveries that are due and unleased but nobody picked up.

        A lost or unprocessable message, a worker that died mid-attempt (its lease
        expires), a dispatch that failed because the broker was down: all end here.
        Ringing twice is harmless, since an attempt starts only by winning the row's claim.

        What is merely waiting is not rung again, so a backlog does not multiply its own
        messages: with ``waiting`` known, only deliveries rung before the queue was last
        seen empty qualify (their message has been fetched); and a delivery a worker left
        for lack of its endpoint's concurrency budget, or behind the head of an ordered
        endpoint (``held_by`` ``concurrency``, ``ordering``), is left while that endpoint
        has a delivery in flight: the worker holding it pulls the next.
        """
        now = self.clock()
        quiet_since = now - self.sweep_after
        if self.waiting is not None:
            try:
                queued = self.waiting()
            except Exception as exc:
                log.warning("outbox.queue_length_unknown", error=repr(exc))
                queued = None
            if queued == 0:
                self._drained_at = now
            if queued is not None:
                if self._drained_at is None:
                    return 0  # never seen empty: everything rung may still be queued
                quiet_since = min(quiet_since, self._drained_at)
        busy = aliased(Delivery)
        in_flight = (
            select(busy.id)
            .where(
                busy.endpoint_id == Delivery.endpoint_id,
                busy.lease_until.is_not(None),
                busy.lease_until > now,
            )
            .exists()
        )
        with self.session_factory() as session, session.begin():
            lock_for_write(session)
            query = (
                select(Delivery.id)
                .where(
                    Delivery.status == DeliveryStatus.PENDING,
                    Delivery.next_attempt_at <= quiet_since,
                    or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
                    or_(Delivery.rung_at.is_(None), Delivery.rung_at <= quiet_since),
                    or_(
                        Delivery.held_by.is_(None),
                        Delivery.held_by.not_in(("concurrency", "ordering")),
                        ~in_flight,
                    ),
                )
                .order_by(Delivery.next_attempt_at)
                .limit(limit)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            due = list(session.scalars(query))
            if due:
                session.execute(update(Delivery).where(Delivery.id.in_(due)).values(rung_at=now))
        if due:
            log.info("outbox.swept", deliveries=len(due))
            self._ring(due)
        return len(due)

    def run(
        self,
        stop: threading.Event,
        *,
        interval: float = DEFAULT_POLL_INTERVAL,
        sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
    ) -> None:
        """Poll until ``stop`` is set: at once while batches come back full, otherwise
        backing off up to ``interval``. Database errors are logged and retried; they never
        stop the loop."""
        idle = 0.0
        next_sweep = 0.0
        pruner = None
        if self.retention is not None:
            pruner = Retention(self.session_factory, self.retention, clock=self.clock)
        while not stop.is_set():
            try:
                result = self.poll_once()
                if time.monotonic() >= next_sweep:
                    self.sweep_once()
                    next_sweep = time.monotonic() + sweep_interval
                if pruner is not None:
                    pruner.run_if_due()
            except SQLAlchemyError as exc:
                log.error("outbox.poll_failed", error=str(exc).splitlines()[0])
                stop.wait(interval)
                continue
            if result.events >= self.batch_size:
                idle = 0.0
                continue
            idle = min(interval, max(0.01, idle * 2 or 0.01)) if result.events == 0 else 0.0
            if stop.wait(idle):
                break

    def _ring(self, delivery_ids: Sequence[str]) -> None:
        if not delivery_ids:
            return
        try:
            self.dispatch(delivery_ids)
        except Exception as exc:
            # The rows are committed; the sweeper rings again once the broker is back.
            log.warning("outbox.dispatch_failed", deliveries=len(delivery_ids), error=repr(exc))

    def _waiting_events(self, session: Session) -> Select[Any]:
        query = (
            select(Event)
            .where(Event.dispatched_at.is_(None))
            .order_by(Event.id)
            .limit(self.batch_size)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return query

    @staticmethod
    def _endpoints_for(session: Session, workspaces: set[str]) -> dict[str, list[Endpoint]]:
        grouped: dict[str, list[Endpoint]] = defaultdict(list)
        for endpoint in session.scalars(
            select(Endpoint).where(Endpoint.workspace_id.in_(workspaces)).order_by(Endpoint.id)
        ):
            grouped[endpoint.workspace_id].append(endpoint)
        return grouped


def _delivery_row(event: Event, endpoint: Endpoint, now: Any) -> dict[str, Any]:
    status = DeliveryStatus.PENDING if endpoint.enabled else DeliveryStatus.SKIPPED
    return {
        "id": ids.new_id(ids.DELIVERY),
        "event_id": event.id,
        "endpoint_id": endpoint.id,
        "workspace_id": event.workspace_id,
        "event_type": event.type,
        "status": status,
        "attempt_count": 0,
        "cycle_attempts": 0,
        "next_trigger": Trigger.SCHEDULED,
        "next_attempt_at": now if status == DeliveryStatus.PENDING else None,
        "rung_at": now if status == DeliveryStatus.PENDING else None,
        "created_at": now,
        "updated_at": now,
        "completed_at": None if status == DeliveryStatus.PENDING else now,
        "last_error": None
        if endpoint.enabled
        else f"endpoint disabled: {endpoint.disabled_reason}",
    }


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> Any:
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return (
        module.insert(Delivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"])
        .returning(Delivery.id, Delivery.status)
    )
