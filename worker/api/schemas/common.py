"""Types several resources share."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from outbox.envelope import isoformat

Timestamp = Annotated[
    str,
    Field(
        json_schema_extra={"format": "date-time"},
        examples=["2026-12-01T22:30:00.123Z"],
    ),
]
"""A moment in UTC, to the millisecond, with a ``Z``."""


def stamp(moment: datetime | None) -> str | None:
    """A datetime in its wire form."""
    return isoformat(moment) if moment is not None else None
