"""New deliveries: one row per (event, endpoint), inserted at most once.

The poller creates them when it fans an event out; a replay to an event's current
subscribers creates them for endpoints that subscribed later. Both insert with ``ON
CONFLICT DO NOTHING`` on the unique (event, endpoint) pair, so a second poller or a
second replay racing this one cannot make a duplicate: the row already there wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, Protocol, cast

from sqlalchemy import ARRAY, Table, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from outbox import ids
from outbox.models import Delivery, DeliveryStatus, Trigger


class Fanned(Protocol):
    """What fanning an event out reads of it: an :class:`~outbox.models.Event`, or a
    row of the poller's statement."""

    @property
    def id(self) -> str: ...
    @property
    def workspace_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def body(self) -> str: ...


class Subscriber(Protocol):
    """What fanning out reads of an endpoint: an :class:`~outbox.models.Endpoint`, or a
    row of the poller's statement."""

    @property
    def id(self) -> str: ...
    @property
    def event_types(self) -> list[str]: ...
    @property
    def filter(self) -> Mapping[str, Any] | None: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def disabled_reason(self) -> str | None: ...


def skipped_note(endpoint: Subscriber) -> str:
    """The ``last_error`` of a delivery kept as ``skipped`` because ``endpoint`` is
    disabled."""
    return f"endpoint disabled: {endpoint.disabled_reason}"


def delivery_row(
    event: Fanned, endpoint: Subscriber, now: datetime, *, trigger: Trigger = Trigger.SCHEDULED
) -> dict[str, Any]:
    """The columns of a new delivery of ``event`` to ``endpoint``: pending and due now,
    or kept as ``skipped`` (replayable) while the endpoint is disabled."""
    pending = endpoint.enabled
    return {
        "id": ids.new_id(ids.DELIVERY),
        "event_id": event.id,
        "endpoint_id": endpoint.id,
        "workspace_id": event.workspace_id,
        "event_type": event.type,
        "status": DeliveryStatus.PENDING if pending else DeliveryStatus.SKIPPED,
        "attempt_count": 0,
        "cycle_attempts": 0,
        "next_trigger": trigger,
        "next_attempt_at": now if pending else None,
        "rung_at": now if pending else None,
        "created_at": now,
        "updated_at": now,
        "completed_at": None if pending else now,
        "last_error": None if pending else skipped_note(endpoint),
    }


def insert_new(session: Session, rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """Insert the rows, skipping any (event, endpoint) pair that already has a delivery;
    returns (id, status) of each row inserted."""
    if not rows:
        return []
    connection = session.connection()
    if connection.dialect.name == "postgresql" and len(rows) >= UNNEST_FROM:
        # One array per column, unnested by the server: one statement text whatever the
        # number of rows (prepared once), in one round trip. SQLAlchemy's multi-row
        # VALUES renders a new text with a bind parameter per row and column (15,000 a
        # page), which the driver parses again on every batch (a third of a fanning
        # poller's CPU).
        columns = {name: [row[name] for row in rows] for name in COLUMNS}
        found = connection.execute(_unnest_insert(), columns)
    else:
        # The rows as parameters, not as a VALUES clause: one statement text, compiled
        # once and cached, sent in pages.
        found = connection.execute(_insert(connection.dialect.name == "postgresql"), list(rows))
    return [(row.id, row.status) for row in found]


D = cast(Table, Delivery.__table__)

COLUMNS = (
    "id",
    "event_id",
    "endpoint_id",
    "workspace_id",
    "event_type",
    "status",
    "attempt_count",
    "cycle_attempts",
    "next_trigger",
    "next_attempt_at",
    "rung_at",
    "created_at",
    "updated_at",
    "completed_at",
    "last_error",
)
"""The columns :func:`delivery_row` fills."""


UNNEST_FROM = 20
"""Rows from which PostgreSQL gets them as arrays: below, binding fifteen arrays costs
more than the short multi-row statement (0.2 ms of a one-event poll's 1.3)."""


@cache
def _insert(postgres: bool) -> Any:
    dialect: Any = postgresql if postgres else sqlite
    return (
        dialect.insert(D)
        .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"])
        .returning(D.c.id, D.c.status)
    )


@cache
def _unnest_insert() -> Any:
    arrays = (
        func.unnest(*(bindparam(name, type_=ARRAY(D.c[name].type)) for name in COLUMNS))
        .table_valued(*COLUMNS)
        .render_derived()
    )
    return (
        postgresql.insert(D)
        .from_select(COLUMNS, select(*(arrays.c[name] for name in COLUMNS)))
        .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"])
        .returning(D.c.id, D.c.status)
    )
