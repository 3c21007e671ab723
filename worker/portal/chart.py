"""The endpoint chart: attempts per minute by outcome, and latency, over the last day,
drawn as inline SVG on the server (no script, no external asset).

This module only does the geometry; the template draws it, so every label goes through
the template's escaping. The drawing is ``WIDTH`` by ``HEIGHT`` user units stretched to the
page's width: a bar per minute with attempts (successes at the bottom, failures stacked
on them) in the top lane, and a line through each minute's mean latency in a lane of
its own below, so neither hides the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from worker.ops.timeline import DEFAULT_WINDOW, Minute

WIDTH = 1440
"""User units across: one per minute of the day."""

HEIGHT = 120
"""User units high."""

BARS_HEIGHT = 76
"""The top lane: attempts per minute, successes at the bottom, failures on top."""

LATENCY_TOP = 86
"""Where the bottom lane (mean latency per minute) starts; it ends at ``HEIGHT``."""


@dataclass(frozen=True)
class Bar:
    """One minute's attempts: x, the successes' and failures' heights (from the bottom)."""

    x: float
    ok_height: float
    failed_height: float


@dataclass(frozen=True)
class Chart:
    """Everything the template needs to draw one endpoint's last day."""

    label: str
    bars: list[Bar]
    latency_points: str
    max_attempts: int
    max_latency_ms: float
    succeeded: int
    failed: int
    mean_ms: float | None
    window_start: datetime
    window_end: datetime

    @property
    def empty(self) -> bool:
        """No attempts in the window."""
        return not self.bars

    @property
    def summary(self) -> str:
        """The chart in words, for screen readers and as its title."""
        if self.empty:
            return f"No attempts to {self.label} in the last 24 hours."
        mean = f"{self.mean_ms:.0f} ms" if self.mean_ms is not None else "no"
        return (
            f"Attempts per minute to {self.label} over the last 24 hours: "
            f"{self.succeeded} succeeded, {self.failed} failed, at most "
            f"{self.max_attempts} in a minute; mean latency {mean}, slowest minute "
            f"{self.max_latency_ms:.0f} ms."
        )


def build_chart(
    minutes: Sequence[Minute],
    *,
    now: datetime,
    label: str,
    window: timedelta = DEFAULT_WINDOW,
) -> Chart:
    """The chart of ``minutes`` (as ``attempt_timeline`` returns them) ending at ``now``."""
    start = now - window
    span = window.total_seconds()
    top = max((m.attempts for m in minutes), default=0)
    slowest = max((m.mean_ms for m in minutes), default=0.0)
    bars: list[Bar] = []
    points: list[str] = []
    for minute in minutes:
        offset = (minute.start - start).total_seconds() / span
        x = round(min(max(offset, 0.0), 1.0) * (WIDTH - 1), 1)
        ok_height = minute.succeeded / top * BARS_HEIGHT if top else 0.0
        failed_height = minute.failed / top * BARS_HEIGHT if top else 0.0
        bars.append(Bar(x, round(ok_height, 2), round(failed_height, 2)))
        lane = HEIGHT - LATENCY_TOP - 2
        y = HEIGHT - 1 - (minute.mean_ms / slowest * lane if slowest else 0.0)
        points.append(f"{x:.1f},{y:.1f}")
    succeeded = sum(m.succeeded for m in minutes)
    failed = sum(m.failed for m in minutes)
    total = succeeded + failed
    mean = sum(m.mean_ms * m.attempts for m in minutes) / total if total else None
    return Chart(
        label=label,
        bars=bars,
        latency_points=" ".join(points),
        max_attempts=top,
        max_latency_ms=slowest,
        succeeded=succeeded,
        failed=failed,
        mean_ms=mean,
        window_start=start,
        window_end=now,
    )
