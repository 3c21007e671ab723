"""Where a moment in time falls among the time-sortable ids of :mod:`outbox.ids`.

An id is a prefix, 10 characters holding the creation millisecond and 16 random ones,
so every id created at or after ``moment`` sorts at or after ``id_floor(prefix, moment)``.
A time window over ids is then an id range, which the primary key and the
``(…, id)`` indexes answer without reading the rows outside it.
"""

from __future__ import annotations

from datetime import datetime

from outbox import ids

_TIME_CHARS = 10  # 2 zero bits + 48 bits of milliseconds, in base32
_RANDOM_CHARS = 16  # 80 random bits


def id_floor(prefix: str, moment: datetime) -> str:
    """The smallest id with ``prefix`` that can be created at or after ``moment``."""
    millis = max(int(moment.timestamp() * 1000), 0)
    stamp = ids.new_id(prefix, now_ms=millis)[: len(prefix) + 1 + _TIME_CHARS]
    return stamp + "0" * _RANDOM_CHARS
