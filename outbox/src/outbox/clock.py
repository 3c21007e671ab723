"""Time, injected: every component takes a ``Clock`` so tests can move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""A function returning the current time as an aware UTC ``datetime``."""


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)
