"""Admission: may a claimed delivery go out now, or must it wait?

Decided inside the claim transaction, with the endpoint's row locked, in this order:

1. endpoint paused → held (``paused``) and looked at again after ``paused_recheck``;
2. circuit open and another delivery is the probe → held (``circuit``) until the probe
   is done;
3. as many deliveries in flight as the endpoint's concurrency limit → held
   (``concurrency``) for about ``limited_retry``;
4. over the rate limit → held (``rate``) until the slot it reserved.

A held delivery gets a later ``next_attempt_at`` and spends no attempt: being limited is
our decision, not the receiver's failure. An admitted delivery may become the probe of an
open circuit and takes its rate slot. (A disabled endpoint is not an admission question:
its deliveries are kept as ``skipped``, see ``worker.engine.claim``.) A healthy
endpoint's concurrency budget is enforced by the batched claim itself, without its row
lock; these decisions are for the endpoints that need one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session

from outbox.models import Delivery, Endpoint
from worker.policy import circuit, limits
from worker.settings import Settings

log = structlog.get_logger(__name__)


class Hold(StrEnum):
    """Why a delivery waits without spending an attempt (``Delivery.held_by``)."""

    PAUSED = "paused"
    CIRCUIT = "circuit"
    CONCURRENCY = "concurrency"
    RATE = "rate"
    ORDERING = "ordering"
    """Behind the head of an ordered (``fifo``) endpoint, which is not done yet."""


@dataclass(frozen=True)
class Wait:
    """A delivery must wait: why, and for how long."""

    reason: Hold
    delay: timedelta


@dataclass
class Admission:
    """The endpoint's policy for one claimed delivery."""

    settings: Settings
    rng: random.Random

    def decide(
        self,
        session: Session,
        endpoint: Endpoint,
        delivery: Delivery,
        previous_hold: str | None,
        now: datetime,
    ) -> Wait | None:
        """Why and how long ``delivery`` must wait, or ``None`` to admit it now (then
        the admission is recorded on ``endpoint``: it may become the probe, it takes a
        rate slot)."""
        settings = self.settings
        if endpoint.paused:
            return Wait(Hold.PAUSED, settings.paused_recheck)
        threshold = settings.circuit_threshold
        probe_done = circuit.held_until(endpoint, delivery.id, now=now, threshold=threshold)
        if probe_done is not None:
            return Wait(Hold.CIRCUIT, self.spread(probe_done - now))
        limit = limits.concurrency_limit(endpoint, settings.max_concurrency)
        busy = limits.in_flight(session, endpoint.id, now=now, besides=delivery.id)
        if busy >= limit:
            return Wait(Hold.CONCURRENCY, self.spread(settings.limited_retry))
        rate = endpoint.rate_limit or settings.rate_limit
        if rate and previous_hold != Hold.RATE:  # a delivery back from a rate hold owns its slot
            decision = limits.rate_decision(rate, endpoint.rate_tat, now=now)
            endpoint.rate_tat = decision.tat
            if decision.wait is not None:
                return Wait(Hold.RATE, decision.wait)
        if circuit.start_probe(
            endpoint,
            delivery.id,
            now=now,
            threshold=threshold,
            lease=settings.lease_duration,
        ):
            log.info("delivery.probing", failures=endpoint.consecutive_failures)
        return None

    def spread(self, delay: timedelta) -> timedelta:
        """``delay`` plus up to ``retry_jitter`` of it (at least up to one
        ``limited_retry``), so held deliveries do not all come back at once."""
        spread = max(delay * self.settings.retry_jitter, self.settings.limited_retry)
        return max(delay, timedelta(0)) + spread * self.rng.random()


def hold(session: Session, delivery_id: str, token: str, wait: Wait, now: datetime) -> None:
    """Release the claim and look again after ``wait.delay``; no attempt is spent."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.lease_token == token)
        .values(
            lease_until=None,
            lease_token=None,
            next_attempt_at=now + wait.delay,
            rung_at=now,
            held_by=wait.reason,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    log.info("delivery.held", held_by=wait.reason, retry_in_s=round(wait.delay.total_seconds(), 3))
