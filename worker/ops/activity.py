"""An endpoint's recent activity, as the person on call needs it: is it answering, and
what is waiting for it.

The counters on the endpoint row (consecutive failures, failing since, last success)
say how it is right now; the success rates here come from the attempts of the last hour
and day, and the backlog from its pending deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from outbox.models import Attempt, Delivery, DeliveryStatus
from worker.policy.outcomes import Verdict

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

SUCCEEDED_OUTCOME = Verdict.SUCCEEDED.value
"""``Attempt.outcome`` of an attempt that got a 2xx."""


@dataclass(frozen=True)
class Activity:
    """Attempts and successes over the last hour and day; pending and in-flight counts."""

    attempts_hour: int = 0
    succeeded_hour: int = 0
    attempts_day: int = 0
    succeeded_day: int = 0
    pending: int = 0
    in_flight: int = 0

    @staticmethod
    def rate(succeeded: int, attempts: int) -> float | None:
        """Success rate in percent, or None without attempts."""
        return round(100.0 * succeeded / attempts, 1) if attempts else None

    @property
    def success_rate_hour(self) -> float | None:
        """Percent of the last hour's attempts that got a 2xx."""
        return self.rate(self.succeeded_hour, self.attempts_hour)

    @property
    def success_rate_day(self) -> float | None:
        """Percent of the last day's attempts that got a 2xx."""
        return self.rate(self.succeeded_day, self.attempts_day)


def endpoint_activity(
    session: Session, endpoint_ids: Sequence[str], *, now: datetime
) -> dict[str, Activity]:
    """Activity of each endpoint in ``endpoint_ids`` (two grouped queries for all)."""
    if not endpoint_ids:
        return {}
    ids = list(endpoint_ids)
    ok = Attempt.outcome == SUCCEEDED_OUTCOME
    recent = Attempt.started_at >= now - HOUR
    attempts = session.execute(
        select(
            Delivery.endpoint_id,
            func.sum(case((recent, 1), else_=0)),
            func.sum(case((recent & ok, 1), else_=0)),
            func.count(),
            func.sum(case((ok, 1), else_=0)),
        )
        .select_from(Attempt)
        .join(Delivery, Delivery.id == Attempt.delivery_id)
        .where(Delivery.endpoint_id.in_(ids), Attempt.started_at >= now - DAY)
        .group_by(Delivery.endpoint_id)
    ).all()
    waiting = session.execute(
        select(
            Delivery.endpoint_id,
            func.count(),
            func.sum(case((Delivery.lease_until > now, 1), else_=0)),
        )
        .where(Delivery.status == DeliveryStatus.PENDING, Delivery.endpoint_id.in_(ids))
        .group_by(Delivery.endpoint_id)
    ).all()
    counts: dict[str, dict[str, int]] = {i: {} for i in ids}
    for endpoint_id, hour, ok_hour, day, ok_day in attempts:
        counts[endpoint_id].update(
            attempts_hour=int(hour or 0),
            succeeded_hour=int(ok_hour or 0),
            attempts_day=int(day or 0),
            succeeded_day=int(ok_day or 0),
        )
    for endpoint_id, pending, in_flight in waiting:
        counts[endpoint_id].update(pending=int(pending or 0), in_flight=int(in_flight or 0))
    return {i: Activity(**values) for i, values in counts.items()}
