"""The pipeline at a glance: is the outbox keeping up, what waits, what is failing.

Every figure is one indexed query: the oldest waiting event (``ix_events_waiting``),
pending deliveries (``ix_deliveries_due``), finished ones in the window
(``completed_at``), attempts in the window (``started_at``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from outbox.envelope import isoformat
from outbox.models import FINISHED_STATUSES, Attempt, Delivery, DeliveryStatus, Endpoint, Event
from worker.ops.activity import SUCCEEDED_OUTCOME

DEFAULT_WINDOW = timedelta(hours=1)
"""How far back "recent" figures look."""

DEFAULT_TOP = 5
"""Endpoints listed as slowest and most failing."""


@dataclass(frozen=True)
class EndpointFigures:
    """One endpoint's attempts in the window."""

    endpoint_id: str
    url: str
    attempts: int
    failed: int
    mean_ms: float
    max_ms: float
    # Since when the endpoint has been failing without a success (None: it is not).
    failing_since: datetime | None = None


@dataclass(frozen=True)
class Stats:
    """A snapshot of the pipeline at ``now``."""

    now: datetime
    window: timedelta
    waiting_events: int
    oldest_waiting_age: timedelta | None
    due: int
    in_flight: int
    scheduled: int
    finished: dict[str, int]
    attempts: int
    attempts_failed: int
    endpoints: dict[str, int]
    slowest: list[EndpointFigures] = field(default_factory=list)
    most_failing: list[EndpointFigures] = field(default_factory=list)


def collect(
    session: Session,
    *,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
    top: int = DEFAULT_TOP,
) -> Stats:
    """Gather the figures of :class:`Stats`."""
    since = now - window
    waiting = session.execute(
        select(func.count(), func.min(Event.created_at)).where(Event.dispatched_at.is_(None))
    ).one()
    unleased = or_(Delivery.lease_until.is_(None), Delivery.lease_until <= now)
    pending = session.execute(
        select(
            func.sum(case((and_(Delivery.next_attempt_at <= now, unleased), 1), else_=0)),
            func.sum(case((Delivery.lease_until > now, 1), else_=0)),
            func.sum(case((and_(Delivery.next_attempt_at > now, unleased), 1), else_=0)),
        ).where(Delivery.status == DeliveryStatus.PENDING)
    ).one()
    finished: dict[str, int] = dict.fromkeys(FINISHED_STATUSES, 0)
    for status, count in session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.completed_at >= since, Delivery.status.in_(FINISHED_STATUSES))
        .group_by(Delivery.status)
    ):
        finished[status] = int(count)
    per_endpoint = _per_endpoint(session, since)
    endpoints = session.execute(
        select(
            func.count(),
            func.sum(case((Endpoint.enabled.is_(False), 1), else_=0)),
            func.sum(case((Endpoint.paused.is_(True), 1), else_=0)),
            func.sum(case((Endpoint.consecutive_failures > 0, 1), else_=0)),
        )
    ).one()
    return Stats(
        now=now,
        window=window,
        waiting_events=int(waiting[0] or 0),
        oldest_waiting_age=(now - waiting[1]) if waiting[1] is not None else None,
        due=int(pending[0] or 0),
        in_flight=int(pending[1] or 0),
        scheduled=int(pending[2] or 0),
        finished=finished,
        attempts=sum(f.attempts for f in per_endpoint),
        attempts_failed=sum(f.failed for f in per_endpoint),
        endpoints={
            "total": int(endpoints[0] or 0),
            "disabled": int(endpoints[1] or 0),
            "paused": int(endpoints[2] or 0),
            "failing": int(endpoints[3] or 0),
        },
        slowest=sorted(per_endpoint, key=lambda f: -f.mean_ms)[:top],
        most_failing=sorted(
            (f for f in per_endpoint if f.failed), key=lambda f: (-f.failed, f.endpoint_id)
        )[:top],
    )


def _per_endpoint(session: Session, since: datetime) -> list[EndpointFigures]:
    failed = case((Attempt.outcome != SUCCEEDED_OUTCOME, 1), else_=0)
    rows = session.execute(
        select(
            Delivery.endpoint_id,
            Endpoint.url,
            Endpoint.failing_since,
            func.count(),
            func.sum(failed),
            func.avg(Attempt.duration_ms),
            func.max(Attempt.duration_ms),
        )
        .select_from(Attempt)
        .join(Delivery, Delivery.id == Attempt.delivery_id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(Attempt.started_at >= since)
        .group_by(Delivery.endpoint_id, Endpoint.url, Endpoint.failing_since)
    ).all()
    return [
        EndpointFigures(
            endpoint_id=endpoint_id,
            url=url,
            attempts=int(count),
            failed=int(fails or 0),
            mean_ms=round(float(mean or 0.0), 1),
            max_ms=round(float(longest or 0.0), 1),
            failing_since=_aware(failing_since),
        )
        for endpoint_id, url, failing_since, count, fails, mean, longest in rows
    ]


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive times; every stored time is UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def stats_view(stats: Stats) -> dict[str, Any]:
    """The snapshot as plain data (``--json``)."""

    def figures(items: list[EndpointFigures]) -> list[dict[str, Any]]:
        return [
            {**vars(f), "failing_since": isoformat(f.failing_since) if f.failing_since else None}
            for f in items
        ]

    age = stats.oldest_waiting_age
    return {
        "window_seconds": stats.window.total_seconds(),
        "outbox": {
            "waiting_events": stats.waiting_events,
            "oldest_waiting_age_seconds": round(age.total_seconds(), 3) if age else None,
        },
        "deliveries": {
            "due_now": stats.due,
            "in_flight": stats.in_flight,
            "scheduled": stats.scheduled,
            "finished_in_window": dict(stats.finished),
        },
        "attempts_in_window": {"total": stats.attempts, "failed": stats.attempts_failed},
        "endpoints": dict(stats.endpoints),
        "slowest_endpoints": figures(stats.slowest),
        "most_failing_endpoints": figures(stats.most_failing),
    }
