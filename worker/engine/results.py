"""What the engine did with one delivery, for the actor and for callers that drive it
one delivery at a time (tests, ``replay``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Result:
    """What became of a delivery. ``retry_in``: when to ring again, if at all;
    ``held_by``: why it was postponed without an attempt."""

    status: str
    retry_in: timedelta | None = None
    held_by: str | None = None
    # Deliveries this attempt released from behind the circuit breaker: due now.
    released: tuple[str, ...] = ()


NOT_CLAIMED = Result("not_claimed")
"""Not pending, not due, or under another worker's lease: nothing to do."""
LEFT = Result("left")
"""Due, but its endpoint's concurrency budget is taken: left as it is for the worker
that holds the budget to pull when a slot frees."""
POSTPONED = "postponed"
EXHAUSTED = "exhausted"
"""An attempt's outcome when it failed retryably but the schedule has no delay left."""
LEASE_LOST = "lease_lost"
