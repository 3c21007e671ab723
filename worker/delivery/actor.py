"""The delivery actor, declared on a broker that was built first (no global broker).

A message rings a batch of deliveries (``deliver(*delivery_ids)``), or asks a worker to
pull from endpoints' backlogs (``deliver(pulls={endpoint_id: slots, …})``, all in one
claim; ``deliver(pull=endpoint_id, slots=n)`` from earlier versions is still read). The actor
only claims and hands the claims to the engine's sending loop; the engine records them
and rings retries, releases and pulls itself, through :func:`declare_deliver_actor`'s
``send``.

Our own outages are the actor's business, not the receiver's: when the database is
unreachable the thread waits for it (one ``database.unavailable`` line for the whole
process, then silence until ``database.recovered``) and tries the same delivery again,
so the worker pauses instead of failing every queued message once a second. If the
outage outlasts ``OUTAGE_WAIT``, the message is re-sent with a delay and the thread
moves on; the row, not the message, still decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dramatiq
import structlog

from worker.availability import Availability
from worker.engine.engine import DeliveryEngine
from worker.errors import DatabaseUnavailable, OwnFailure
from worker.settings import Settings
from worker.telemetry.metrics import NO_METRICS, Metrics

log = structlog.get_logger(__name__)

DeliverActor = dramatiq.Actor[..., None]
"""The delivery actor's type: ``deliver(*delivery_ids, pulls=None)``."""

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
    engine: DeliveryEngine,
    settings: Settings,
    *,
    database: Availability | None = None,
    broker_state: Availability | None = None,
    metrics: Metrics = NO_METRICS,
) -> DeliverActor:
    """Declare ``deliver(*delivery_ids)`` on ``broker`` and start the engine's recorder,
    which rings retries (delayed messages, with the delay the policy chose), released
    deliveries and pulls through the same actor."""
    database = database or Availability("database")
    broker_state = broker_state or Availability("broker")

    def send(
        delivery_ids: Sequence[str], delay_ms: int = 0, pulls: Mapping[str, int] | None = None
    ) -> None:
        kwargs = {"pulls": dict(pulls)} if pulls else {}
        try:
            actor.send_with_options(args=tuple(delivery_ids), kwargs=kwargs, delay=delay_ms or None)
        except Exception as exc:
            # The rows already hold their next attempt times; the sweeper rings them.
            metrics.own_failure("broker")
            broker_state.failed(exc)
        else:
            broker_state.succeeded()

    def deliver(
        *delivery_ids: str,
        pulls: dict[str, int] | None = None,
        pull: str | None = None,
        slots: int = 0,
    ) -> None:
        # ``pull``/``slots``: one endpoint, as messages enqueued before ``pulls`` say it.
        if pull is not None:
            pulls = {**(pulls or {}), pull: slots}
        for _ in range(IN_THREAD_TRIES):
            try:
                engine.ring(delivery_ids, pulls)
            except DatabaseUnavailable as exc:
                database.failed(exc)
                if not database.wait(OUTAGE_WAIT):
                    break
                continue
            database.succeeded()
            return
        send(delivery_ids, OUTAGE_RESEND_DELAY_MS, pulls)

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
    engine.start(send)
    return actor
