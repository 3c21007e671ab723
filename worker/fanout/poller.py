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
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

import structlog
from sqlalchemy import Table, bindparam, false, null, or_, select, true, union_all, update
from sqlalchemy import cast as cast_
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased, sessionmaker

from outbox.clock import Clock, utcnow
from outbox.database import IN_INDEX_ORDER, is_outage, lock_for_write
from outbox.models import Delivery, DeliveryStatus, Endpoint, Event
from worker.availability import Availability, first_line
from worker.endpoints.filters import matches_any
from worker.endpoints.predicate import accepting
from worker.engine.claim import ids_in
from worker.fanout.deliveries import Fanned, delivery_row, insert_new
from worker.fanout.wakeup import Wakeup
from worker.ops.retention import Retention
from worker.policy.limits import live_lease
from worker.policy.notices import notice_subject
from worker.settings import (
    DEFAULT_POLL_BATCH_SIZE,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_SWEEP_AFTER,
    DEFAULT_SWEEP_INTERVAL,
)
from worker.telemetry.metrics import NO_METRICS, Metrics
from worker.telemetry.tracing import NO_TRACING, Tracing

log = structlog.get_logger(__name__)

Dispatch = Callable[[Sequence[str]], None]
"""Asks the workers to look at these deliveries now."""

Waiting = Callable[[], "int | None"]
"""How many messages wait in the broker's queue, not yet fetched (``None``: unknown)."""

IN_ID_ORDER = IN_INDEX_ORDER
"""For the next poll's transaction while the outbox is behind: take the oldest waiting
events by reading ``ix_events_waiting`` in id order, ``LIMIT`` deep. With 100,000
waiting, the bitmap scan and sort cost 77 ms a poll (a sort spilled to disk) against
0.3 ms in index order. Only while behind (the last poll took a full batch): at a low
rate the few events waiting cost nothing to sort, and the extra statement would be a
round trip per event."""

MIN_OUTAGE_BACKOFF = 0.2
MAX_OUTAGE_BACKOFF = 5.0
"""Seconds between polls while the database is unreachable: doubling up to this."""


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
    batch_size: int = DEFAULT_POLL_BATCH_SIZE
    sweep_after: timedelta = DEFAULT_SWEEP_AFTER
    clock: Clock = utcnow
    # Finished history older than this is pruned from the loop, a little at a time.
    retention: timedelta | None = None
    # Shared with the process's other users, so an outage is logged once per process.
    database: Availability = field(default_factory=lambda: Availability("database"))
    broker: Availability = field(default_factory=lambda: Availability("broker"))
    metrics: Metrics = NO_METRICS
    tracing: Tracing = NO_TRACING
    # The broker's queue length, so that what is merely queued is not rung again.
    waiting: Waiting | None = None
    _drained_at: datetime | None = field(default=None, init=False, repr=False)
    # The last poll took a full batch: more are waiting (see ``IN_ID_ORDER``).
    _behind: bool = field(default=False, init=False, repr=False)

    def poll_once(self) -> PollResult:
        """Fan out one batch of waiting events, commit, then dispatch the new deliveries.

        On PostgreSQL the batch is claimed with ``FOR UPDATE SKIP LOCKED``, so several
        pollers share the outbox without waiting on or repeating each other; on SQLite the
        transaction holds the write lock (``BEGIN IMMEDIATE``). The unique (event,
        endpoint) constraint is the last line of defence against a duplicate delivery.
        """
        now = self.clock()
        with ExitStack() as traced:
            with self.session_factory() as session, session.begin():
                lock_for_write(session)
                connection = session.connection()
                pg = connection.dialect.name == "postgresql"
                if pg and self._behind:
                    connection.exec_driver_sql(IN_ID_ORDER)
                events, subscribers = _taken(connection, pg, self.batch_size, now)
                self._behind = len(events) >= self.batch_size
                if not events:
                    return PollResult(0, 0, 0)
                # Only a batch gets a span (an idle poller's empty polls would drown the
                # traces). It continues the producers' traces (each event's stored trace
                # context) and lasts through the commit and the ringing, so the messages
                # carry its context to the deliveries' spans.
                span = traced.enter_context(
                    self.tracing.continuing(
                        "webhook.fan_out",
                        [e.trace_context for e in events],
                        **{"catentio.events": len(events)},
                    )
                )
                span.set_attribute("catentio.event.ids", [e.id for e in events])
                subscribed = Subscribed(subscribers)
                rows = [
                    delivery_row(event, endpoint, now)
                    for event in events
                    for endpoint in accepting(subscribed(event), event)
                ]
                created = insert_new(session, rows)
            self.metrics.poll_batch(len(events))
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

        What is merely waiting in a long queue is not rung again, so a backlog does not
        multiply its own messages: with ``waiting`` known, only deliveries rung before
        the queue was last seen empty qualify (their message has been fetched by then).
        Nor is a delivery of an endpoint that has one in flight: the worker holding it
        pulls that endpoint's due deliveries as its slots free (those it left for lack
        of budget, those behind the head of an ordered endpoint, and at least once a
        second any other), so a delivery rung again here would only race that pull.
        Nor while the endpoint has had an attempt recorded within ``sweep_after`` (its
        ``last_success_at`` or ``last_failure_at``): between a batch recorded and the
        pull that refills it the endpoint may have nothing in flight for a moment, and
        a sweep landing there would re-ring a whole backlog. Once the endpoint has been
        quiet for ``sweep_after`` with nothing in flight (its worker gone: the lease
        expired), the sweeper rings again.
        """
        now = self.clock()
        active_since = quiet_since = now - self.sweep_after
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
                # Strictly before: a ring made at the moment it was seen empty (this
                # very sweep's) came after the look.
                quiet_since = min(quiet_since, self._drained_at - timedelta(microseconds=1))
        with self.session_factory() as session, session.begin():
            lock_for_write(session)
            if session.get_bind().dialect.name == "postgresql":
                query = _sweep_by_endpoint(now, quiet_since, active_since, limit)
            else:
                query = _sweep(now, quiet_since, active_since, limit)
            due = list(session.scalars(query))
            if due:
                session.execute(update(Delivery).where(Delivery.id.in_(due)).values(rung_at=now))
        if due:
            log.info("outbox.swept", deliveries=len(due))
            self.metrics.swept(len(due))
            self._ring(due)
        return len(due)

    def run(
        self,
        stop: threading.Event,
        *,
        interval: float = DEFAULT_POLL_INTERVAL,
        sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
        wakeup: Wakeup | None = None,
    ) -> None:
        """Poll until ``stop`` is set: at once while batches come back full, otherwise
        backing off up to ``interval``. Database errors never stop the loop: an outage is
        logged once (``database.unavailable`` … ``database.recovered``) and the loop waits
        for the database, slower and slower, instead of failing every interval.

        With a ``wakeup``, a commit that published cuts the sleep short; while it is
        ``listening`` (every commit rings), a batch that was not full is not followed by
        another look, and an empty outbox is polled only every ``interval``, since
        nothing can arrive unannounced."""
        idle = 0.0
        outage_backoff = MIN_OUTAGE_BACKOFF
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
                self.metrics.own_failure("database")
                if not is_outage(exc):
                    log.error("outbox.poll_failed", error=first_line(exc))
                    stop.wait(max(interval, 1.0))
                    continue
                self.database.failed(exc)  # logged once; then quiet, slower retries
                stop.wait(outage_backoff)
                outage_backoff = min(outage_backoff * 2, MAX_OUTAGE_BACKOFF)
                continue
            self.database.succeeded()
            outage_backoff = MIN_OUTAGE_BACKOFF
            if result.events >= self.batch_size:
                idle = 0.0
                continue
            if wakeup is not None and wakeup.listening:
                # A batch that was not full took everything committed before it (but
                # what another poller holds); whatever commits later rings: no second
                # look at an outbox just emptied (half the transactions at a low rate).
                idle = interval
            elif result.events:
                idle = 0.0
            else:
                idle = min(interval, max(0.01, idle * 2 or 0.01))
            if wakeup is None:
                stop.wait(idle)
            else:
                wakeup.sleep(idle, stop)

    def _ring(self, delivery_ids: Sequence[str]) -> None:
        if not delivery_ids:
            return
        try:
            self.dispatch(delivery_ids)
        except Exception as exc:
            # The rows are committed; the sweeper rings again once the broker is back.
            self.metrics.own_failure("broker")
            self.broker.failed(exc)
            return
        self.broker.succeeded()


class Subscribed:
    """The endpoints an event of a batch goes to, before payload filters: those of its
    workspace whose type filters match it, but the one an operational event is about.

    The type filters are matched once per (workspace, event type) of the batch, not once
    per event: a batch of one type, in a workspace of a hundred endpoints, costs a
    hundred matches rather than a hundred per event."""

    def __init__(self, endpoints: Iterable[Any]) -> None:
        self._by_workspace: dict[str, list[Any]] = defaultdict(list)
        for endpoint in endpoints:
            self._by_workspace[endpoint.workspace_id].append(endpoint)
        self._matching: dict[tuple[str, str], list[Any]] = {}

    def __call__(self, event: Fanned) -> list[Any]:
        key = (event.workspace_id, event.type)
        matching = self._matching.get(key)
        if matching is None:
            matching = self._matching[key] = [
                e
                for e in self._by_workspace.get(event.workspace_id, ())
                if matches_any(e.event_types, event.type)
            ]
        about = notice_subject(event)
        # An operational event never goes to the endpoint it is about.
        return matching if about is None else [e for e in matching if e.id != about]


def _sweep(now: datetime, quiet_since: datetime, active_since: datetime, limit: int) -> Any:
    """SQLite: the deliveries the sweeper rings again (see :meth:`Poller.sweep_once`),
    oldest due first; the transaction's write lock keeps two sweeps apart."""
    in_flight = _in_flight(Delivery.endpoint_id, now)
    served = (
        select(Endpoint.id)
        .where(
            Endpoint.id == Delivery.endpoint_id,
            or_(
                Endpoint.last_success_at > active_since,
                Endpoint.last_failure_at > active_since,
            ),
        )
        .exists()
    )
    return (
        select(Delivery.id)
        .where(*_forgotten(now, quiet_since), ~in_flight, ~served)
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    )


def _sweep_by_endpoint(
    now: datetime, quiet_since: datetime, active_since: datetime, limit: int
) -> Any:
    """PostgreSQL: the same deliveries as :func:`_sweep`, found endpoint by endpoint.

    The endpoint's conditions (nothing in flight, no attempt recorded lately) are decided
    first, once per endpoint, and only the endpoints left have their oldest due
    deliveries read, from ``ix_deliveries_backlog`` (at most ``limit`` each, locked with
    ``SKIP LOCKED``). Asking them of every pending delivery instead read an endpoint's
    whole backlog on every sweep while its worker drained it (100,000 rows, a second of
    the server's CPU each time)."""
    in_flight = _in_flight(Endpoint.id, now)
    due = (
        select(Delivery.id, Delivery.next_attempt_at)
        .where(Delivery.endpoint_id == Endpoint.id, *_forgotten(now, quiet_since))
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .lateral("due")
    )
    return (
        select(due.c.id)
        .select_from(Endpoint)
        .join(due, true())
        .where(
            ~in_flight,
            or_(Endpoint.last_success_at.is_(None), Endpoint.last_success_at <= active_since),
            or_(Endpoint.last_failure_at.is_(None), Endpoint.last_failure_at <= active_since),
        )
        .order_by(due.c.next_attempt_at)
        .limit(limit)
    )


def _in_flight(endpoint_id: Any, now: datetime) -> Any:
    """Whether the endpoint ``endpoint_id`` names has a delivery under a live lease."""
    busy = aliased(Delivery)
    return select(busy.id).where(*live_lease(busy, endpoint_id, now)).exists()


def _forgotten(now: datetime, quiet_since: datetime) -> tuple[Any, ...]:
    """A delivery's own conditions to be rung again: pending, due since before
    ``quiet_since``, unleased, and not rung since then."""
    return (
        Delivery.status == DeliveryStatus.PENDING,
        Delivery.next_attempt_at <= quiet_since,
        or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
        or_(Delivery.rung_at.is_(None), Delivery.rung_at <= quiet_since),
    )


EV = cast(Table, Event.__table__)
E = cast(Table, Endpoint.__table__)


@cache
def _take(postgres: bool) -> Any:
    """Mark the oldest waiting events dispatched and return them: on PostgreSQL those no
    other poller holds (``SKIP LOCKED``); on SQLite the transaction's write lock
    serialises pollers. In the same transaction as their deliveries."""
    waiting = (
        select(EV.c.id)
        .where(EV.c.dispatched_at.is_(None))
        .order_by(EV.c.id)
        .limit(bindparam("limit"))
    )
    if postgres:
        waiting = waiting.with_for_update(skip_locked=True)
    return (
        update(EV)
        .where(EV.c.id.in_(waiting.scalar_subquery()))
        .values(dispatched_at=bindparam("now"))
        .returning(EV.c.id, EV.c.workspace_id, EV.c.type, EV.c.body, EV.c.trace_context)
    )


def _taken(
    connection: Connection, postgres: bool, limit: int, now: datetime
) -> tuple[list[Any], list[Any]]:
    """Take up to ``limit`` waiting events (marking them dispatched) and read the
    endpoints of their workspaces: both in id order. On PostgreSQL in one statement
    (one round trip, a third of the poller's at a low rate); on SQLite in two."""
    params = {"limit": limit, "now": now}
    events: Sequence[Any]
    subscribers: Sequence[Any]
    if postgres:
        rows = connection.execute(_taken_with_subscribers(), params).all()
        events = [row for row in rows if row.is_event]
        subscribers = [row for row in rows if not row.is_event]
    else:
        events = connection.execute(_take(False), params).all()
        if not events:
            return [], []
        subscribers = connection.execute(
            _subscribers(), {"ids": sorted({e.workspace_id for e in events})}
        ).all()
    return sorted(events, key=_id), sorted(subscribers, key=_id)


def _id(row: Any) -> str:
    return cast(str, row.id)


@cache
def _taken_with_subscribers() -> Any:
    """PostgreSQL: :func:`_take` and the endpoints of the taken events' workspaces in one
    statement. The UPDATE runs once, as a CTE; its rows and the endpoints' come back as
    one list, told apart by ``is_event``, each kind's other columns NULL."""
    taken = _take(True).cte("taken")
    events = select(
        true().label("is_event"),
        taken.c.id,
        taken.c.workspace_id,
        taken.c.type,
        taken.c.body,
        taken.c.trace_context,
        cast_(null(), E.c.event_types.type).label("event_types"),
        cast_(null(), E.c.filter.type).label("filter"),
        cast_(null(), E.c.enabled.type).label("enabled"),
        cast_(null(), E.c.disabled_reason.type).label("disabled_reason"),
    )
    subscribers = select(
        false(),
        E.c.id,
        E.c.workspace_id,
        cast_(null(), EV.c.type.type),
        cast_(null(), EV.c.body.type),
        cast_(null(), EV.c.trace_context.type),
        E.c.event_types,
        E.c.filter,
        E.c.enabled,
        E.c.disabled_reason,
    ).where(E.c.workspace_id.in_(select(taken.c.workspace_id)))
    return union_all(events, subscribers)


@cache
def _subscribers() -> Any:
    """SQLite: the endpoints of the workspaces bound as ``ids``, with what fan-out reads
    (on PostgreSQL :func:`_taken_with_subscribers` reads them with the events)."""
    return select(
        E.c.id,
        E.c.workspace_id,
        E.c.event_types,
        E.c.filter,
        E.c.enabled,
        E.c.disabled_reason,
    ).where(ids_in(E.c.workspace_id, False))
