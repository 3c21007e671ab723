"""An endpoint's attempts minute by minute: how many succeeded, how many failed, and
how long they took, over a window (the portal draws the last 24 hours).

One grouped query over the attempts of the window (``ix_attempts_started_at``) for
all the endpoints asked about, bucketed in the database, so a day of attempts comes
back as at most 1,440 rows per endpoint whatever the traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.orm import Session

from outbox.models import Attempt, Delivery
from worker.ops.activity import SUCCEEDED_OUTCOME

DEFAULT_WINDOW = timedelta(hours=24)
"""How far back the timeline looks."""


@dataclass(frozen=True)
class Minute:
    """The attempts that started in one minute."""

    start: datetime
    succeeded: int
    failed: int
    mean_ms: float
    max_ms: float

    @property
    def attempts(self) -> int:
        """Every attempt of the minute."""
        return self.succeeded + self.failed


def _minute_expression(dialect: str) -> Any:
    """The attempt's start as whole minutes since the epoch, in SQL."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", Attempt.started_at), Integer) // 60
    return cast(func.floor(func.extract("epoch", Attempt.started_at) / 60), Integer)


def attempt_timeline(
    session: Session,
    endpoint_ids: Sequence[str],
    *,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
) -> dict[str, list[Minute]]:
    """Per endpoint, its minutes with attempts in ``(now - window, now]``, oldest first
    (minutes without attempts are left out)."""
    timelines: dict[str, list[Minute]] = {i: [] for i in endpoint_ids}
    if not endpoint_ids:
        return timelines
    minute = _minute_expression(session.get_bind().dialect.name).label("minute")
    ok = case((Attempt.outcome == SUCCEEDED_OUTCOME, 1), else_=0)
    rows = session.execute(
        select(
            Delivery.endpoint_id,
            minute,
            func.count(),
            func.sum(ok),
            func.avg(Attempt.duration_ms),
            func.max(Attempt.duration_ms),
        )
        .select_from(Attempt)
        .join(Delivery, Delivery.id == Attempt.delivery_id)
        .where(Delivery.endpoint_id.in_(list(endpoint_ids)), Attempt.started_at > now - window)
        .group_by(Delivery.endpoint_id, minute)
        .order_by(Delivery.endpoint_id, minute)
    ).all()
    for endpoint_id, minutes, count, succeeded, mean, longest in rows:
        good = int(succeeded or 0)
        timelines[endpoint_id].append(
            Minute(
                start=datetime.fromtimestamp(int(minutes) * 60, UTC),
                succeeded=good,
                failed=int(count) - good,
                mean_ms=round(float(mean or 0.0), 1),
                max_ms=round(float(longest or 0.0), 1),
            )
        )
    return timelines
