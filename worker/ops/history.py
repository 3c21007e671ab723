"""Finding deliveries and events in a long history: filters and keyset pages.

Ids are time-sortable (a prefix, then 48 bits of milliseconds, then randomness), so
"newest first" is ``ORDER BY id DESC``, the boundary between two pages is the last id
seen (a cursor, not an offset), and a time window is an id range. Each query therefore
walks one of the ``(endpoint_id, id)``, ``(status, id)`` or ``(workspace_id, id)``
indexes and costs the same on page 1 and on page 10,000.

``since``/``until`` select by *creation* time, as encoded in the id: "the deliveries
created since the outage began", not "the ones that were last tried since then".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from outbox import ids
from outbox.errors import ValidationError
from outbox.idtime import id_floor
from outbox.models import Attempt, Delivery, DeliveryStatus, Endpoint, Event
from worker.endpoints.filters import check_event_filter, type_condition
from worker.errors import DeliveryNotFound, EventNotFound, InvalidCursor, InvalidWindow

T = TypeVar("T")

Fanout = dict[str, int]
"""An event's deliveries counted by status: ``{"succeeded": 2, "failed": 1}``."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows, newest first; ``next_cursor`` continues it (None: last page)."""

    rows: list[T]
    next_cursor: str | None


def check_cursor(cursor: str, prefix: str) -> str:
    """``cursor`` if it is an id with ``prefix`` (the last id of a page, as the
    listing's ``more: --after …`` line shows)."""
    if not ids.is_id(cursor, prefix):
        raise InvalidCursor(
            f"{cursor!r} is not a {prefix}_… cursor: pass the last id of the previous page "
            "(its 'more: --after …' line shows it)"
        )
    return cursor


def check_statuses(statuses: Sequence[str]) -> tuple[str, ...]:
    """The statuses, each one of pending, succeeded, failed, skipped."""
    for status in statuses:
        if status not in tuple(DeliveryStatus):
            raise ValidationError(f"status {status!r} is not one of {', '.join(DeliveryStatus)}")
    return tuple(dict.fromkeys(statuses))


def check_window(since: datetime | None, until: datetime | None) -> None:
    """Refuse a window that ends before it starts."""
    if since is not None and until is not None and until <= since:
        raise InvalidWindow("until must be later than since")


@dataclass(frozen=True, kw_only=True)
class DeliveryFilter:
    """Which deliveries: every field given narrows the selection."""

    workspace_id: str | None = None
    endpoint_id: str | None = None
    event_id: str | None = None
    event_types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        check_statuses(self.statuses)
        check_window(self.since, self.until)
        for pattern in self.event_types:
            check_event_filter(pattern)

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses of this filter."""
        where: list[ColumnElement[bool]] = []
        if self.workspace_id:
            where.append(Delivery.workspace_id == self.workspace_id)
        if self.endpoint_id:
            where.append(Delivery.endpoint_id == self.endpoint_id)
        if self.event_id:
            where.append(Delivery.event_id == self.event_id)
        if self.event_types:
            where.append(type_condition(Delivery.event_type, self.event_types))
        if self.statuses:
            where.append(Delivery.status.in_(self.statuses))
        if self.since is not None:
            where.append(Delivery.id >= id_floor(ids.DELIVERY, self.since))
        if self.until is not None:
            where.append(Delivery.id < id_floor(ids.DELIVERY, self.until))
        return where


@dataclass(frozen=True, kw_only=True)
class EventFilter:
    """Which events: every field given narrows the selection."""

    workspace_id: str | None = None
    event_types: tuple[str, ...] = ()
    waiting: bool | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        check_window(self.since, self.until)
        for pattern in self.event_types:
            check_event_filter(pattern)

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses of this filter."""
        where: list[ColumnElement[bool]] = []
        if self.workspace_id:
            where.append(Event.workspace_id == self.workspace_id)
        if self.event_types:
            where.append(type_condition(Event.type, self.event_types))
        if self.waiting is True:
            where.append(Event.dispatched_at.is_(None))
        elif self.waiting is False:
            where.append(Event.dispatched_at.is_not(None))
        if self.since is not None:
            where.append(Event.id >= id_floor(ids.EVENT, self.since))
        if self.until is not None:
            where.append(Event.id < id_floor(ids.EVENT, self.until))
        return where


def _page(
    session: Session, query: Select[Any], column: Any, *, limit: int, after: str | None
) -> Page[Any]:
    if after is not None:
        query = query.where(column < after)
    rows = list(session.scalars(query.order_by(column.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1].id if more and rows else None)


def delivery_page(
    session: Session, selection: DeliveryFilter, *, limit: int, after: str | None = None
) -> Page[Delivery]:
    """Up to ``limit`` deliveries, newest first, older than the cursor ``after``."""
    if after is not None:
        check_cursor(after, ids.DELIVERY)
    query = select(Delivery).where(*selection.conditions())
    return _page(session, query, Delivery.id, limit=limit, after=after)


def event_page(
    session: Session, selection: EventFilter, *, limit: int, after: str | None = None
) -> Page[Event]:
    """Up to ``limit`` events, newest first, older than the cursor ``after``."""
    if after is not None:
        check_cursor(after, ids.EVENT)
    query = select(Event).where(*selection.conditions())
    return _page(session, query, Event.id, limit=limit, after=after)


def iter_deliveries(
    sessions: sessionmaker[Session],
    selection: DeliveryFilter,
    *,
    limit: int,
    after: str | None = None,
    batch_size: int = 500,
) -> Iterator[Delivery]:
    """Up to ``limit`` deliveries, newest first, read ``batch_size`` at a time with a
    short session per batch: a million rows stream through without sitting in memory."""

    def read(session: Session, size: int, cursor: str | None) -> Page[Delivery]:
        return delivery_page(session, selection, limit=size, after=cursor)

    return _stream(sessions, read, limit=limit, after=after, batch_size=batch_size)


def _stream(
    sessions: sessionmaker[Session],
    read: Callable[[Session, int, str | None], Page[T]],
    *,
    limit: int,
    after: str | None,
    batch_size: int,
) -> Iterator[T]:
    """The rows of up to ``limit`` pages' worth, each page read by ``read(session, size,
    cursor)`` in a session of its own."""
    left = limit
    while left > 0:
        with sessions() as session:
            page = read(session, min(batch_size, left), after)
        yield from page.rows
        left -= len(page.rows)
        if page.next_cursor is None:
            return
        after = page.next_cursor


def delivery_id_batches(
    sessions: sessionmaker[Session], selection: DeliveryFilter, *, batch_size: int
) -> Iterator[list[str]]:
    """The ids of the selected deliveries, oldest first, ``batch_size`` at a time.

    Each batch is read in its own short transaction, after the previous batch was
    handled, so the caller can change rows between batches (replay re-opens them).
    """
    last: str | None = None
    while True:
        query = select(Delivery.id).where(*selection.conditions())
        if last is not None:
            query = query.where(Delivery.id > last)
        with sessions() as session:
            batch = list(session.scalars(query.order_by(Delivery.id).limit(batch_size)))
        if not batch:
            return
        yield batch
        last = batch[-1]


def count_deliveries(session: Session, selection: DeliveryFilter) -> int:
    """How many deliveries the filter selects."""
    query = select(func.count()).select_from(Delivery).where(*selection.conditions())
    return int(session.scalar(query) or 0)


def get_delivery(session: Session, delivery_id: str) -> Delivery:
    """The delivery, or :class:`~worker.errors.DeliveryNotFound`."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise DeliveryNotFound(f"no delivery {delivery_id!r}")
    return delivery


def delivery_attempts(session: Session, delivery_id: str) -> list[Attempt]:
    """Every attempt of the delivery, first to last."""
    query = select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.number)
    return list(session.scalars(query))


def get_event(session: Session, event_id: str) -> Event:
    """The event, or :class:`~worker.errors.EventNotFound`."""
    event = session.get(Event, event_id)
    if event is None:
        raise EventNotFound(f"no event {event_id!r}")
    return event


def event_deliveries(session: Session, event_id: str) -> list[tuple[Delivery, str]]:
    """The event's fan-out: each of its deliveries with its endpoint's URL, oldest first."""
    query = (
        select(Delivery, Endpoint.url)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(Delivery.event_id == event_id)
        .order_by(Delivery.id)
    )
    return [(delivery, url) for delivery, url in session.execute(query)]


def fanout_counts(session: Session, event_ids: Sequence[str]) -> dict[str, Fanout]:
    """Per event: how many of its deliveries are in each status."""
    counts: dict[str, Fanout] = {i: {} for i in event_ids}
    if event_ids:
        query = (
            select(Delivery.event_id, Delivery.status, func.count())
            .where(Delivery.event_id.in_(list(event_ids)))
            .group_by(Delivery.event_id, Delivery.status)
        )
        for event_id, status, count in session.execute(query):
            counts[event_id][status] = int(count)
    return counts


def iter_events(
    sessions: sessionmaker[Session],
    selection: EventFilter,
    *,
    limit: int,
    after: str | None = None,
    batch_size: int = 500,
) -> Iterator[tuple[Event, Fanout]]:
    """Up to ``limit`` events, newest first, each with its fan-out counts, read
    ``batch_size`` at a time with a short session per batch."""

    def read(session: Session, size: int, cursor: str | None) -> Page[tuple[Event, Fanout]]:
        page = event_page(session, selection, limit=size, after=cursor)
        fanout = fanout_counts(session, [e.id for e in page.rows])
        return Page([(e, fanout[e.id]) for e in page.rows], page.next_cursor)

    return _stream(sessions, read, limit=limit, after=after, batch_size=batch_size)
