"""One record and what hangs from it: a delivery with its attempts, an event with its
fan-out. The command line, the HTTP API and the portal read them through here.

``workspace_id``, when given, confines the lookup to one workspace: another
workspace's row is reported exactly like a missing one, so an id guessed from another
tenant reveals nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outbox.errors import DeliveryNotFound, EndpointNotFound, EventNotFound
from outbox.models import Attempt, Delivery, Endpoint, Event


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery, its endpoint, its event and every attempt, oldest first."""

    delivery: Delivery
    endpoint: Endpoint
    event: Event
    attempts: list[Attempt]


@dataclass(frozen=True)
class FanoutRow:
    """One delivery of an event, with where it goes."""

    delivery: Delivery
    endpoint_url: str


def get_delivery(
    session: Session, delivery_id: str, *, workspace_id: str | None = None
) -> Delivery:
    """The delivery, or ``DeliveryNotFound`` (also for another workspace's)."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or (workspace_id is not None and delivery.workspace_id != workspace_id):
        raise DeliveryNotFound(f"no delivery {delivery_id!r}")
    return delivery


def get_event(session: Session, event_id: str, *, workspace_id: str | None = None) -> Event:
    """The event, or ``EventNotFound`` (also for another workspace's)."""
    event = session.get(Event, event_id)
    if event is None or (workspace_id is not None and event.workspace_id != workspace_id):
        raise EventNotFound(f"no event {event_id!r}")
    return event


def get_workspace_endpoint(session: Session, endpoint_id: str, *, workspace_id: str) -> Endpoint:
    """The endpoint if it belongs to ``workspace_id``, else ``EndpointNotFound``."""
    endpoint = session.get(Endpoint, endpoint_id)
    if endpoint is None or endpoint.workspace_id != workspace_id:
        raise EndpointNotFound(f"no endpoint {endpoint_id!r}")
    return endpoint


def workspace_endpoints(session: Session, workspace_id: str) -> list[Endpoint]:
    """The workspace's endpoints, oldest first."""
    query = select(Endpoint).where(Endpoint.workspace_id == workspace_id).order_by(Endpoint.id)
    return list(session.scalars(query))


def delivery_record(
    session: Session, delivery_id: str, *, workspace_id: str | None = None
) -> DeliveryRecord:
    """The delivery with everything the person on call wants to see about it."""
    delivery = get_delivery(session, delivery_id, workspace_id=workspace_id)
    attempts = list(
        session.scalars(
            select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.number)
        )
    )
    endpoint = session.get(Endpoint, delivery.endpoint_id)
    event = session.get(Event, delivery.event_id)
    if endpoint is None or event is None:  # deleted between the two reads
        raise DeliveryNotFound(f"no delivery {delivery_id!r}")
    return DeliveryRecord(delivery, endpoint, event, attempts)


def event_fanout(session: Session, event_id: str) -> list[FanoutRow]:
    """The deliveries of an event with their endpoints' URLs, oldest first."""
    rows = session.execute(
        select(Delivery, Endpoint.url)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(Delivery.event_id == event_id)
        .order_by(Delivery.id)
    )
    return [FanoutRow(delivery, url) for delivery, url in rows]


def fanout_counts(session: Session, event_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per event: how many of its deliveries are in each status."""
    counts: dict[str, dict[str, int]] = {i: {} for i in event_ids}
    if event_ids:
        query = (
            select(Delivery.event_id, Delivery.status, func.count())
            .where(Delivery.event_id.in_(list(event_ids)))
            .group_by(Delivery.event_id, Delivery.status)
        )
        for event_id, status, count in session.execute(query):
            counts[event_id][status] = int(count)
    return counts
