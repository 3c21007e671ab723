"""The delivery actor, declared on a broker that was built first (no global broker).

Our own outages are the actor's business, not the receiver's: when the database is
unreachable the thread waits for it (one ``database.unavailable`` line for the whole
process, then silence until ``database.recovered``) and tries the same delivery again,
so the worker pauses instead of failing every queued message once a second. If the
outage outlasts ``OUTAGE_WAIT``, the message is re-sent with a delay and the thread
moves on; the row, not the message, still decides.
"""

from __future__ import annotations

import dramatiq
import structlog

from worker.availability import Availability
from worker.delivery.deliverer import Deliverer, Result
from worker.errors import DatabaseUnavailable, OwnFailure
from worker.settings import Settings
from worker.telemetry.metrics import NO_METRICS, Metrics

log = structlog.get_logger(__name__)

DeliverActor = dramatiq.Actor[[str], None]
"""The delivery actor's type: takes a delivery id."""

DELIVER = "deliver"
"""The actor's name on the broker."""

MAX_OWN_FAILURE_RETRIES = 20
"""How often dramatiq retries a message whose processing failed on *our* side. The
sweeper rings again after that anyway."""

OUTAGE_WAIT = 20.0
"""Seconds a delivery thread waits for the database to come back before it re-sends
its message with a delay (well inside the actor's time limit)."""

OUTAGE_RESEND_DELAY_MS = 5_000
"""Delay of a message re-sent because the database stayed away."""

IN_THREAD_TRIES = 3
"""Tries of one message within one thread across database failures."""


def _retry_own_failures(retries: int, exception: BaseException) -> bool:
    # Only our own failures are worth a dramatiq retry: the receiver's failures are
    # handled (and scheduled) inside the delivery, never by raising.
    return isinstance(exception, OwnFailure) and retries < MAX_OWN_FAILURE_RETRIES


def declare_deliver_actor(
    broker: dramatiq.Broker,
    deliverer: Deliverer,
    settings: Settings,
    *,
    database: Availability | None = None,
    broker_state: Availability | None = None,
    metrics: Metrics = NO_METRICS,
) -> DeliverActor:
    """Declare ``deliver(delivery_id)`` on ``broker``; it re-sends itself when a retry is
    scheduled, with the delay the policy chose."""
    database = database or Availability("database")
    broker_state = broker_state or Availability("broker")

    def send(delivery_id: str, delay_ms: int = 0) -> None:
        try:
            actor.send_with_options(args=(delivery_id,), delay=delay_ms or None)
        except Exception as exc:
            # The rows already hold their next attempt times; the sweeper rings them.
            metrics.own_failure("broker")
            broker_state.failed(exc)
        else:
            broker_state.succeeded()

    def attempt(delivery_id: str) -> Result | None:
        for _ in range(IN_THREAD_TRIES):
            try:
                result = deliverer.deliver(delivery_id)
            except DatabaseUnavailable as exc:
                database.failed(exc)
                if not database.wait(OUTAGE_WAIT):
                    break
                continue
            database.succeeded()
            return result
        send(delivery_id, OUTAGE_RESEND_DELAY_MS)
        return None

    def deliver(delivery_id: str) -> None:
        result = attempt(delivery_id)
        if result is None:
            return
        for released in result.released:  # the circuit closed: due now
            send(released)
        if result.retry_in is not None:
            send(delivery_id, max(0, int(result.retry_in.total_seconds() * 1000)))

    time_limit_ms = int((settings.lease_duration.total_seconds() + OUTAGE_WAIT + 30) * 1000)
    actor: DeliverActor = dramatiq.actor(
        broker=broker,
        actor_name=DELIVER,
        queue_name=settings.queue_name,
        retry_when=_retry_own_failures,
        throws=(OwnFailure,),
        min_backoff=1000,
        max_backoff=60_000,
        time_limit=time_limit_ms,
    )(deliver)
    return actor
