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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from outbox import ids
from outbox.errors import ValidationError
from outbox.idtime import id_floor
from outbox.models import Delivery, DeliveryStatus, Event
from outbox.validation import check_event_filter

T = TypeVar("T")

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows, newest first; ``next_cursor`` continues it (None: last page)."""

    rows: list[T]
    next_cursor: str | None


def check_cursor(cursor: str, prefix: str) -> str:
    """``cursor`` if it is an id with ``prefix`` (as ``next_cursor`` hands out)."""
    body = cursor[len(prefix) + 1 :]
    if (
        not cursor.startswith(prefix + "_")
        or len(body) != 26
        or any(c not in _ALPHABET for c in body)
    ):
        raise ValidationError(
            f"--after {cursor!r} is not a {prefix}_… cursor (use next_cursor of the previous page)"
        )
    return cursor


def type_condition(
    column: InstrumentedAttribute[str], patterns: Sequence[str]
) -> ColumnElement[bool]:
    """Event types matching any of ``patterns``: ``run.succeeded``, ``run.*`` or ``*``."""
    checked = [check_event_filter(p) for p in patterns]
    if "*" in checked:
        return true()
    clauses: list[ColumnElement[bool]] = []
    for pattern in checked:
        if pattern.endswith(".*"):
            clauses.append(column.startswith(pattern[:-1], autoescape=True))
        else:
            clauses.append(column == pattern)
    return or_(*clauses)


def check_statuses(statuses: Sequence[str]) -> tuple[str, ...]:
    """The statuses, each one of pending, succeeded, failed, skipped."""
    for status in statuses:
        if status not in DeliveryStatus.ALL:
            raise ValidationError(
                f"status {status!r} is not one of {', '.join(DeliveryStatus.ALL)}"
            )
    return tuple(dict.fromkeys(statuses))


def check_window(since: datetime | None, until: datetime | None) -> None:
    """Refuse a window that ends before it starts."""
    if since is not None and until is not None and until <= since:
        raise ValidationError("--until must be later than --since")


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
    left = limit
    while left > 0:
        with sessions() as session:
            page = delivery_page(session, selection, limit=min(batch_size, left), after=after)
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
