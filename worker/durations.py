"""Durations (``5s``, ``30m``, ``2h``, ``3d``) and points in time (ISO 8601 or "ago")."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from worker.errors import InvalidDuration

MAX_DURATION = timedelta(days=3650)
"""Longest duration parsed (``inf`` or ``1e400s`` would overflow a ``timedelta``)."""

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"5m"``, ``"1h30m"``, ``"3d"`` → ``timedelta``. A bare number is seconds."""
    value = text.strip().lower()
    if not value:
        raise InvalidDuration("empty duration")
    try:
        seconds = float(value)
    except ValueError:
        pos, seconds = 0, 0.0
        for match in _DURATION.finditer(value):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(value) or pos == 0:
            raise InvalidDuration(
                f"{text!r} is not a duration (use e.g. 30s, 5m, 2h, 3d or 1h30m)"
            ) from None
    if seconds != seconds or seconds < 0:
        raise InvalidDuration(f"{text!r}: a duration cannot be negative or nan")
    if seconds > MAX_DURATION.total_seconds():
        raise InvalidDuration(f"{text!r} is longer than the longest duration accepted (10 years)")
    return timedelta(seconds=seconds)


def parse_schedule(text: str) -> tuple[timedelta, ...]:
    """``"5s,5m,30m"`` → the delays after the 1st, 2nd, 3rd failed attempt."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    if not parts:
        raise InvalidDuration("a retry schedule needs at least one delay, e.g. 5s,5m,30m")
    return tuple(parse_duration(p) for p in parts)


def parse_moment(text: str, *, now: datetime) -> datetime:
    """A point in time: ISO 8601 (naive means UTC) or a duration ago (``2h``, ``3d``)."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - parse_duration(value)
        except InvalidDuration:
            raise InvalidDuration(
                f"{text!r} is neither an ISO time (2026-11-23T10:00:00Z) nor a duration ago (2h)"
            ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_duration(delta: timedelta) -> str:
    """A short human form: ``5s``, ``5m``, ``2h``, ``1h30m``, ``250ms``."""
    total = delta.total_seconds()
    if total < 1:
        return f"{round(total * 1000)}ms"
    seconds = round(total)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
