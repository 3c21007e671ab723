"""An endpoint's event filters: which event types it wants.

A filter is an exact type (``run.succeeded``), a prefix (``run.*``: ``run.succeeded`` and
``run.step.done``, but not ``run`` itself) or ``*``. The same rule is answered in Python
(fan-out: :func:`matches_any`) and in SQL (listing and replay selections:
:func:`type_condition`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, or_, true
from sqlalchemy.orm import InstrumentedAttribute

from outbox.errors import InvalidEventType
from outbox.validation import check_event_type
from worker.errors import InvalidEventFilter


def check_event_filter(value: object) -> str:
    """Return ``value`` if it is a valid endpoint filter: ``TYPE``, ``PREFIX.*`` or ``*``."""
    if value == "*":
        return "*"
    if isinstance(value, str) and value.endswith(".*"):
        try:
            check_event_type(value[:-2])
        except InvalidEventType as exc:
            raise InvalidEventFilter(f"event filter {value!r}: {exc}") from None
        return value
    try:
        return check_event_type(value)
    except InvalidEventType as exc:
        raise InvalidEventFilter(
            f"event filter {value!r} must be an event type, 'prefix.*' or '*' ({exc})"
        ) from None


def filter_matches(pattern: str, event_type: str) -> bool:
    """Whether an endpoint filter accepts an event type.

    ``*`` matches everything, ``run.*`` matches ``run.succeeded`` and ``run.step.done``
    (but not ``run`` itself), anything else must be equal.
    """
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def matches_any(patterns: list[str], event_type: str) -> bool:
    """Whether any of an endpoint's filters accepts ``event_type``."""
    return any(filter_matches(p, event_type) for p in patterns)


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
