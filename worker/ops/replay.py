"""Replay: send finished deliveries again by re-opening the same rows.

A replay never creates a new event. The delivery row goes back to ``pending`` with its
retry schedule restarted (``cycle_attempts = 0``) and ``next_trigger = "replay"``, so the
receiver sees the same ``webhook-id`` and the attempt history continues its numbering.
A delivery that is already pending is not touched: running the same replay twice sends
nothing extra. Deliveries to a disabled endpoint are refused: they would only be
skipped again, so the endpoint has to be enabled first.

Bulk replays walk the selection oldest first in batches, each re-opened in its own short
transaction and then rung; a re-opened row no longer matches a ``failed``/``skipped``
selection, so an interrupted run can simply be started again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from outbox.clock import Clock, utcnow
from outbox.database import lock_for_write
from outbox.errors import ValidationError
from outbox.models import FINISHED_STATUSES, Delivery, DeliveryStatus, Endpoint, Trigger
from worker.delivery.bell import Bell, Reach, Ringing
from worker.endpoints.filters import matches_any
from worker.endpoints.predicate import accepting
from worker.endpoints.registry import get_endpoint
from worker.errors import BrokerUnavailable, Conflict, EndpointDisabled, EndpointsDisabled
from worker.fanout.deliveries import delivery_row, insert_new
from worker.fanout.poller import Dispatch
from worker.ops.history import (
    DeliveryFilter,
    count_deliveries,
    delivery_id_batches,
    delivery_page,
    get_delivery,
    get_event,
)
from worker.settings import Settings

REPLAYABLE = FINISHED_STATUSES
"""Statuses a replay re-opens: succeeded, failed, skipped (pending is already waiting)."""

DEFAULT_BATCH_SIZE = 500
"""Deliveries re-opened per transaction in a bulk replay."""

SAMPLE_SIZE = 10
"""Deliveries a bulk replay's preview shows."""


def refuse_disabled(endpoint: Endpoint) -> EndpointDisabled:
    """The error refusing a replay to the disabled ``endpoint``: it would only be skipped."""
    reason = endpoint.disabled_reason or "no reason given"
    return EndpointDisabled(
        f"endpoint {endpoint.id} is disabled ({reason})", endpoint_id=endpoint.id
    )


def reopen(
    session: Session,
    delivery_ids: Sequence[str],
    *,
    now: datetime,
    statuses: Sequence[str] = REPLAYABLE,
) -> list[str]:
    """Re-open those of ``delivery_ids`` that are in ``statuses`` (never pending) and
    whose endpoint is enabled; returns the ids re-opened.

    The conditions are part of the UPDATE itself, so a row changed since it was selected
    (delivered, re-opened by another replay, its endpoint disabled) is left alone.
    """
    if not delivery_ids:
        return []
    wanted = [s for s in statuses if s in REPLAYABLE]
    enabled = select(Endpoint.id).where(Endpoint.enabled.is_(True))
    statement = (
        update(Delivery)
        .where(
            Delivery.id.in_(list(delivery_ids)),
            Delivery.status.in_(wanted),
            Delivery.endpoint_id.in_(enabled),
        )
        .values(
            status=DeliveryStatus.PENDING,
            cycle_attempts=0,
            next_trigger=Trigger.REPLAY,
            next_attempt_at=now,
            completed_at=None,
            lease_until=None,
            lease_token=None,
            held_by=None,
            rung_at=now,
            updated_at=now,
        )
        .returning(Delivery.id)
    )
    result = session.execute(statement, execution_options={"synchronize_session": False})
    return sorted(result.scalars())


@dataclass(frozen=True)
class DeliveryReplay:
    """The outcome of replaying one delivery. ``reopened`` False: it was already pending."""

    delivery_id: str
    endpoint_url: str
    endpoint_paused: bool
    reopened: bool


def replay_delivery(session: Session, delivery_id: str, *, now: datetime) -> DeliveryReplay:
    """Re-open one delivery. Raises ``DeliveryNotFound``, or ``Conflict`` when its
    endpoint is disabled."""
    lock_for_write(session)
    delivery = get_delivery(session, delivery_id)
    endpoint = get_endpoint(session, delivery.endpoint_id)
    url, paused = endpoint.url, endpoint.paused
    if delivery.status == DeliveryStatus.PENDING:
        return DeliveryReplay(delivery_id, url, paused, reopened=False)
    if not endpoint.enabled:
        raise refuse_disabled(endpoint)
    reopened = bool(reopen(session, [delivery_id], now=now))
    return DeliveryReplay(delivery_id, url, paused, reopened)


@dataclass
class EventReplay:
    """The outcome of replaying an event, delivery by delivery."""

    event_id: str
    reopened: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    already_pending: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    unsubscribed: list[str] = field(default_factory=list)

    @property
    def to_ring(self) -> list[str]:
        """The deliveries that now wait to be sent."""
        return self.reopened + self.created


def replay_event(
    session: Session, event_id: str, *, now: datetime, current_subscribers: bool = False
) -> EventReplay:
    """Re-open an event's deliveries: to the endpoints it was delivered to, or with
    ``current_subscribers`` to the enabled endpoints that match it today (creating
    deliveries for new subscribers, leaving out endpoints that no longer match).

    Raises ``EventNotFound``; ``Conflict`` if the event still waits in the outbox or if
    every delivery it has goes to a disabled endpoint.
    """
    lock_for_write(session)
    event = get_event(session, event_id)
    if event.dispatched_at is None:
        raise Conflict(f"event {event_id} is still waiting in the outbox: nothing sent yet")
    rows = session.execute(
        select(Delivery.id, Delivery.status, Endpoint)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(Delivery.event_id == event_id)
        .order_by(Delivery.id)
    ).all()
    outcome = EventReplay(event_id)
    targets: dict[str, Endpoint] | None = None
    if current_subscribers:
        subscribers = session.scalars(
            select(Endpoint)
            .where(Endpoint.workspace_id == event.workspace_id, Endpoint.enabled.is_(True))
            .order_by(Endpoint.id)
        )
        typed = [e for e in subscribers if matches_any(e.event_types, event.type)]
        targets = {e.id: e for e in accepting(typed, event)}
    candidates = []
    for delivery_id, status, endpoint in rows:
        if targets is not None and endpoint.id not in targets:
            outcome.unsubscribed.append(delivery_id)
        elif status == DeliveryStatus.PENDING:
            outcome.already_pending.append(delivery_id)
        elif not endpoint.enabled:
            outcome.disabled.append(delivery_id)
        else:
            candidates.append(delivery_id)
    outcome.reopened = reopen(session, candidates, now=now)
    if targets is not None:
        delivered_to = {endpoint.id for _, _, endpoint in rows}
        new = [targets[i] for i in sorted(targets.keys() - delivered_to)]
        fresh = [delivery_row(event, e, now, trigger=Trigger.REPLAY) for e in new]
        outcome.created = sorted(delivery_id for delivery_id, _ in insert_new(session, fresh))
    if outcome.disabled and not (outcome.to_ring or outcome.already_pending):
        raise EndpointsDisabled(
            f"every delivery of {event_id} goes to a disabled endpoint", event_id=event_id
        )
    return outcome


def bulk_selection(
    session: Session,
    *,
    endpoint_id: str,
    statuses: Sequence[str],
    since: datetime | None = None,
    until: datetime | None = None,
    event_types: Sequence[str] = (),
) -> DeliveryFilter:
    """The deliveries a bulk replay re-opens, after checking the endpoint can take them.

    Raises ``EndpointNotFound``, ``Conflict`` for a disabled endpoint and
    ``ValidationError`` for a status that cannot be replayed.
    """
    if DeliveryStatus.PENDING in statuses:
        raise ValidationError("pending deliveries are already waiting to be sent")
    if not statuses:
        raise ValidationError("a bulk replay needs the statuses to replay")
    endpoint = get_endpoint(session, endpoint_id)
    if not endpoint.enabled:
        raise refuse_disabled(endpoint)
    return DeliveryFilter(
        endpoint_id=endpoint_id,
        statuses=tuple(statuses),
        since=since,
        until=until,
        event_types=tuple(event_types),
    )


@dataclass(frozen=True)
class BulkPreview:
    """What a bulk replay would re-open: how many, and the newest few."""

    matched: int
    sample: list[Delivery]


def preview_bulk(
    session: Session, selection: DeliveryFilter, *, sample_size: int = SAMPLE_SIZE
) -> BulkPreview:
    """Count the selection and read its newest ``sample_size`` rows (the dry run)."""
    sample = delivery_page(session, selection, limit=sample_size).rows
    return BulkPreview(count_deliveries(session, selection), sample)


@dataclass
class BulkReplay:
    """Re-opens a selection in batches, paced, ringing each batch once it is committed.

    ``reopened`` and ``ring_error`` are kept up to date as batches are done, so a caller
    interrupted half-way can report how far it got.
    """

    sessions: sessionmaker[Session]
    selection: DeliveryFilter
    ring: Dispatch | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    rate: float | None = None
    clock: Clock = utcnow
    sleep: Callable[[float], None] = time.sleep
    reopened: int = 0
    ring_error: str | None = None
    # The last delivery of the last batch done: the rest of the selection is after it.
    last_id: str | None = None

    def run(self, progress: Callable[[int], None] | None = None) -> int:
        """Replay the whole selection; returns how many deliveries were re-opened.
        ``progress(n)`` is called after each batch with the number of rows it handled."""
        batch_size = self.batch_size
        if self.rate is not None:
            # A batch is at most one second's worth, so pacing is smooth, not bursty.
            batch_size = max(1, min(batch_size, int(self.rate)))
        started = time.monotonic()
        for batch in delivery_id_batches(self.sessions, self.selection, batch_size=batch_size):
            with self.sessions() as session, session.begin():
                done = reopen(session, batch, now=self.clock(), statuses=self.selection.statuses)
            self.reopened += len(done)
            self.last_id = batch[-1]
            self._ring(done)
            if progress is not None:
                progress(len(batch))
            if self.rate is not None:
                ahead = self.reopened / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    self.sleep(ahead)
        return self.reopened

    def ringing(self) -> Ringing:
        """Whether the workers were told about the re-opened deliveries (without a bell,
        or once the broker failed, the sweeper rings them)."""
        if self.ring is None:
            return Ringing(Reach.EMBEDDED, rung=False)
        if self.ring_error is not None:
            return Ringing(Reach.UNREACHABLE, rung=False, error=self.ring_error)
        return Ringing(Reach.WORKERS, rung=self.reopened > 0)

    def _ring(self, delivery_ids: list[str]) -> None:
        if self.ring is None or not delivery_ids or self.ring_error is not None:
            return
        try:
            self.ring(delivery_ids)
        except BrokerUnavailable as exc:
            # The rows are committed and pending; the sweeper rings them later.
            self.ring_error = str(exc)


@contextmanager
def bulk_replay(
    sessions: sessionmaker[Session],
    settings: Settings,
    selection: DeliveryFilter,
    *,
    rate: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[BulkReplay]:
    """A bulk replay of ``selection`` that rings the workers through the settings' bell
    (none in embedded mode), closed on exit. ``job.run()`` replays; if it is interrupted,
    ``job.reopened`` says how far it got; ``job.ringing()`` whether the workers know."""
    bell = Bell.for_settings(settings)
    try:
        yield BulkReplay(
            sessions=sessions,
            selection=selection,
            ring=bell.ring if bell is not None else None,
            batch_size=batch_size,
            rate=rate,
        )
    finally:
        if bell is not None:
            bell.close()
