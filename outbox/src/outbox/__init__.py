"""The outbox: models, migrations and ``publish()``, for producers.

Producers need only this package and their own SQLAlchemy session::

    from outbox import publish
    publish(session, workspace_id="ws_1", type="run.succeeded", data={"runId": "r_1"})

Outside the default schema, or on SQLite, point the engine at our tables first
(:func:`bind`, once)::

    outbox.bind(engine, schema="catentio_webhooks")

It never imports dramatiq, httpx, structlog or ``worker``; the poller that fans events
out to deliveries is the worker's (``worker.fanout``).
"""

from outbox.errors import CatentioError, ValidationError
from outbox.models import Attempt, Base, Delivery, DeliveryStatus, Endpoint, Event, Trigger
from outbox.namespace import DEFAULT_SCHEMA, bind
from outbox.publish import DEFAULT_MAX_BODY_BYTES, publish

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_SCHEMA",
    "Attempt",
    "Base",
    "CatentioError",
    "Delivery",
    "DeliveryStatus",
    "Endpoint",
    "Event",
    "Trigger",
    "ValidationError",
    "bind",
    "publish",
]
