"""A workspace sees only its own rows.

The portal (and any door that acts for one workspace) looks rows up through here, and
endpoints through :func:`~worker.endpoints.registry.get_workspace_endpoint` (which the
API uses too): another workspace's endpoint, event or delivery is reported exactly like
a missing one (the same ``NotFound`` and message), so an id guessed from another tenant
reveals nothing, not even that it exists.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from outbox.models import Delivery, Event
from worker.errors import DeliveryNotFound, EventNotFound
from worker.ops.history import get_delivery, get_event


def own_delivery(session: Session, workspace_id: str, delivery_id: str) -> Delivery:
    """The delivery if it is ``workspace_id``'s, else ``DeliveryNotFound``."""
    delivery = get_delivery(session, delivery_id)
    if delivery.workspace_id != workspace_id:
        raise DeliveryNotFound(f"no delivery {delivery_id!r}")
    return delivery


def own_event(session: Session, workspace_id: str, event_id: str) -> Event:
    """The event if it is ``workspace_id``'s, else ``EventNotFound``."""
    event = get_event(session, event_id)
    if event.workspace_id != workspace_id:
        raise EventNotFound(f"no event {event_id!r}")
    return event
