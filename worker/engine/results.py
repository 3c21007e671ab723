"""What the engine did with one delivery: for the actor, and for callers that drive it
one delivery at a time (tests, the command line's and the portal's replays)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from outbox.models import DeliveryStatus
from worker.policy.admission import Hold


class NotRecorded(StrEnum):
    """Why a delivery got no attempt recorded this time."""

    NOT_CLAIMED = "not_claimed"
    """Not due, not pending, leased, or another worker won the claim: a duplicate or
    early message, which does nothing."""
    POSTPONED = "postponed"
    """Held by the endpoint's policy (``held_by`` says which) without spending an attempt."""
    LEFT = "left"
    """Due, but its endpoint's budget (concurrency, or the head of an ordered endpoint)
    is taken: left as it is, marked, for the worker that holds the budget to pull as
    soon as a slot frees."""
    LEASE_LOST = "lease_lost"
    """The request went out, but the lease had passed to another worker, whose record
    wins (the receiver may see the event twice: at-least-once)."""


@dataclass(frozen=True)
class Result:
    """What became of a delivery. ``status``: its status after the attempt (or the
    skip) was recorded, or why nothing was; ``retry_in``: when to ring it again, if at
    all; ``held_by``: why it was postponed."""

    status: DeliveryStatus | NotRecorded
    retry_in: timedelta | None = None
    held_by: Hold | None = None
    released: tuple[str, ...] = ()
    """Deliveries this attempt released from behind the circuit breaker: due now."""


NOT_CLAIMED = Result(NotRecorded.NOT_CLAIMED)
LEFT = Result(NotRecorded.LEFT)
LEASE_LOST = Result(NotRecorded.LEASE_LOST)
