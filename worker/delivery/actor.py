"""The delivery actor, declared on a broker that was built first (no global broker)."""

from __future__ import annotations

import dramatiq
import structlog

from worker.delivery.deliverer import Deliverer
from worker.errors import OwnFailure
from worker.settings import Settings
from worker.telemetry.metrics import NO_METRICS, Metrics

log = structlog.get_logger(__name__)

DeliverActor = dramatiq.Actor[[str], None]
"""The delivery actor's type: takes a delivery id."""

DELIVER = "deliver"
"""The actor's name on the broker."""

MAX_OWN_FAILURE_RETRIES = 20
"""How often dramatiq retries a message whose processing failed on *our* side
(database down). The sweeper rings again after that anyway."""


def _retry_own_failures(retries: int, exception: BaseException) -> bool:
    # Only our own failures are worth a dramatiq retry: the receiver's failures are
    # handled (and scheduled) inside the delivery, never by raising.
    return isinstance(exception, OwnFailure) and retries < MAX_OWN_FAILURE_RETRIES


def declare_deliver_actor(
    broker: dramatiq.Broker,
    deliverer: Deliverer,
    settings: Settings,
    *,
    metrics: Metrics = NO_METRICS,
) -> DeliverActor:
    """Declare ``deliver(delivery_id)`` on ``broker``; it re-sends itself when a retry is
    scheduled, with the delay the policy chose."""

    def deliver(delivery_id: str) -> None:
        result = deliverer.deliver(delivery_id)
        try:
            for released in result.released:  # the circuit closed: due now
                actor.send(released)
            if result.retry_in is not None:
                delay_ms = max(0, int(result.retry_in.total_seconds() * 1000))
                actor.send_with_options(args=(delivery_id,), delay=delay_ms)
        except Exception as exc:
            # The rows already hold their next attempt times; the sweeper rings them.
            metrics.own_failure("broker")
            log.warning("delivery.resend_failed", error=repr(exc))

    time_limit_ms = int((settings.lease_duration.total_seconds() + 30) * 1000)
    actor: DeliverActor = dramatiq.actor(
        broker=broker,
        actor_name=DELIVER,
        queue_name=settings.queue_name,
        retry_when=_retry_own_failures,
        min_backoff=1000,
        max_backoff=60_000,
        time_limit=time_limit_ms,
    )(deliver)
    return actor
