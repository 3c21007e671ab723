"""The outbox: models, migrations and ``publish()``, for producers.

Producers need only this package and their own SQLAlchemy session::

    from outbox import publish
    publish(session, workspace_id="ws_1", type="run.succeeded", data={"runId": "r_1"})

It never imports dramatiq, httpx, structlog or ``worker``; the poller that fans events
out to deliveries is the worker's (``worker.fanout``).
"""

from outbox.errors import CatentioError, ValidationError
from outbox.models import Attempt, Base, Delivery, DeliveryStatus, Endpoint, Event, Trigger
from outbox.publish import DEFAULT_MAX_BODY_BYTES, publish

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "Attempt",
    "Base",
    "CatentioError",
    "Delivery",
    "DeliveryStatus",
    "Endpoint",
    "Event",
    "Trigger",
    "ValidationError",
    "publish",
]
