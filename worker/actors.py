"""The delivery actor, declared on a broker that was built first (no global broker).

A message rings a batch of deliveries (a list of ids; a single id, as older versions
sent, is accepted too). The actor only claims and hands the claims to the engine's
sending loop; the engine records them and rings retries itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
import structlog

from outbox.errors import OwnFailure
from worker.engine.engine import DeliveryEngine
from worker.settings import Settings

log = structlog.get_logger("worker.actors")

DeliverActor = dramatiq.Actor[..., None]
"""The delivery actor's type: ``deliver(delivery_ids, pull=None, slots=0)``: a list of
delivery ids, or (``pull``) an endpoint whose backlog to claim ``slots`` of."""

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
    broker: dramatiq.Broker, engine: DeliveryEngine, settings: Settings
) -> DeliverActor:
    """Declare ``deliver(delivery_ids)`` on ``broker`` and start the engine's recorder,
    which rings retries (delayed messages) through the same actor."""

    def deliver(delivery_ids: list[str] | str, pull: str | None = None, slots: int = 0) -> None:
        ids = [delivery_ids] if isinstance(delivery_ids, str) else list(delivery_ids)
        engine.ring(ids, pull, slots)

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

    def ring(delivery_ids: Sequence[str], delay_ms: int, pull: str | None, slots: int) -> None:
        kwargs = {"pull": pull, "slots": slots} if pull is not None else {}
        actor.send_with_options(args=(list(delivery_ids),), kwargs=kwargs, delay=delay_ms or None)

    engine.start(ring)
    return actor
