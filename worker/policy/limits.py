"""Per-endpoint limits: deliveries in flight, and deliveries started per second.

Both are decided inside the claim transaction, with the endpoint's row locked, so they
hold across every worker thread of every process (the database is the one place they
all share):

* **Concurrency**: a delivery is in flight while it holds a lease. A claim that would
  make more than the endpoint's limit in flight is held back instead. A worker that
  dies mid-attempt frees its slot when its lease expires.
* **Rate**: a generic cell rate algorithm (GCRA) on one column, ``endpoints.rate_tat``,
  the moment the next delivery would be exactly on schedule. A burst of up to one
  second's worth of deliveries is let through, then they are spaced evenly; a delivery
  that must wait reserves its slot and is held until then.

Being limited is our decision, not the receiver's failure: the delivery is re-scheduled
and no attempt is spent (``worker.policy.admission``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outbox.errors import ValidationError
from outbox.models import Delivery, Endpoint

MAX_RATE_LIMIT = 1_000_000.0
"""Largest rate limit accepted, in deliveries per second."""


def check_rate_limit(rate: float, *, what: str = "rate limit") -> float:
    """``rate`` if it is a usable rate limit: finite, above 0, at most
    ``MAX_RATE_LIMIT`` per second (``inf`` or ``nan`` would break every claim)."""
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE_LIMIT):
        raise ValidationError(
            f"{what} must be a number of deliveries per second above 0 and at most "
            f"{MAX_RATE_LIMIT:.0f}, not {rate!r}"
        )
    return rate


def live_lease(deliveries: Any, endpoint_id: Any, now: Any) -> tuple[Any, ...]:
    """The conditions for a delivery of ``deliveries`` (a table's columns, the mapped
    class or an alias of it) to be in flight at the endpoint ``endpoint_id``: under a
    lease that ends after ``now`` (``ix_deliveries_in_flight``'s range)."""
    return (
        deliveries.endpoint_id == endpoint_id,
        deliveries.lease_until.is_not(None),
        deliveries.lease_until > now,
    )


def in_flight(session: Session, endpoint_id: str, *, now: datetime, besides: str) -> int:
    """How many of the endpoint's deliveries other than ``besides`` are under lease."""
    query = (
        select(func.count())
        .select_from(Delivery)
        .where(*live_lease(Delivery, endpoint_id, now), Delivery.id != besides)
    )
    return int(session.scalar(query) or 0)


def concurrency_limit(endpoint: Endpoint, default: int) -> int:
    """The endpoint's own limit, or the configured default."""
    return endpoint.max_concurrency or default


@dataclass(frozen=True)
class RateDecision:
    """``wait``: how long until the delivery's slot (``None``: it may start now).
    ``tat``: the endpoint's new rate state, with that slot taken."""

    wait: timedelta | None
    tat: datetime


def rate_decision(rate: float, tat: datetime | None, *, now: datetime) -> RateDecision:
    """GCRA for ``rate`` deliveries per second, allowing a burst of ``max(1, rate)``.

    A delivery that has to wait is given the next free slot and that slot is taken at
    once (a reservation), so held deliveries come back one by one at their own times
    instead of all retrying together; back at its slot, it does not ask again.
    """
    interval = timedelta(seconds=1 / rate)
    burst = max(1, math.floor(rate))
    tolerance = interval * (burst - 1)
    arrival = max(tat or now, now)
    early = arrival - now - tolerance
    return RateDecision(wait=early if early > timedelta(0) else None, tat=arrival + interval)
