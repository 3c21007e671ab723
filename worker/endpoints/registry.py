"""The endpoint registry: registering, finding, changing and deleting endpoints.

Switching a registered endpoint off and on (disable, enable, pause, resume) is
``worker.endpoints.switches``; its signing secrets are ``worker.endpoints.signing``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from outbox import ids
from outbox.clock import Clock, utcnow
from outbox.database import lock_for_write
from outbox.errors import ValidationError
from outbox.models import Attempt, Delivery, DeliveryStatus, Endpoint
from outbox.validation import check_workspace_id
from worker.endpoints.filters import check_event_filter
from worker.endpoints.predicate import check_filter
from worker.endpoints.secretbox import SecretBox
from worker.endpoints.signing import new_signing_secret
from worker.errors import DeliveriesPending, EndpointNotFound, NothingToUpdate
from worker.http.addresses import IPNetwork
from worker.http.headers import check_custom_headers
from worker.http.urls import check_endpoint_url, check_registrable
from worker.ops.history import check_cursor
from worker.policy.limits import check_rate_limit
from worker.settings import DEFAULT_MAX_HEADER_BYTES

BATCH_SIZE = 500
"""Deliveries deleted per transaction."""


FIFO = "fifo"
"""Ordered delivery: one delivery of the endpoint in flight at a time, in event order
(stored in ``endpoints.ordering``)."""

PARALLEL = "parallel"
"""The default: up to the endpoint's concurrency limit at once, in no promised order
(stored as ``NULL``)."""

ORDERINGS = (FIFO, PARALLEL)


def check_ordering(ordering: str) -> str | None:
    """``fifo`` or ``parallel`` → the stored value (``parallel`` is ``NULL``)."""
    if ordering not in ORDERINGS:
        raise ValidationError(f"ordering must be one of {', '.join(ORDERINGS)}, not {ordering!r}")
    return FIFO if ordering == FIFO else None


def ordering_of(endpoint: Endpoint) -> str:
    """The endpoint's ordering as shown: ``fifo`` or ``parallel``."""
    return FIFO if endpoint.ordering == FIFO else PARALLEL


@dataclass(frozen=True)
class NewSecret:
    """What the receiver must be given, once: a ``whsec_`` secret or a ``whpk_`` key."""

    endpoint: Endpoint
    secret: str


def create_endpoint(
    session: Session,
    box: SecretBox,
    *,
    workspace_id: str,
    url: str,
    event_types: Sequence[str],
    scheme: str = "v1",
    headers: Mapping[str, str] | None = None,
    description: str | None = None,
    max_concurrency: int | None = None,
    rate_limit: float | None = None,
    payload_filter: Mapping[str, Any] | None = None,
    ordering: str = PARALLEL,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    allowed_networks: Iterable[IPNetwork] = (),
    clock: Clock = utcnow,
) -> NewSecret:
    """Validate and add an endpoint to ``session``; returns it with its one-time secret.
    A URL whose host is a literal address outside ``allowed_networks``
    (``CATENTIO_ALLOWED_NETWORKS``) that the SSRF guard refuses is refused here.
    ``payload_filter`` (:mod:`worker.endpoints.predicate`) narrows the events it gets;
    ``ordering`` ``fifo`` makes it an ordered endpoint (one in flight, in event order)."""
    check_workspace_id(workspace_id)
    check_endpoint_url(url)
    check_registrable(url, allowed_networks=allowed_networks)
    if not event_types:
        raise ValidationError("an endpoint needs at least one event type filter (or '*')")
    filters = sorted({check_event_filter(t) for t in event_types})
    custom = check_custom_headers(headers or {}, max_bytes=max_header_bytes)
    if max_concurrency is not None and max_concurrency < 1:
        raise ValidationError("max concurrency must be at least 1")
    if rate_limit is not None:
        check_rate_limit(rate_limit)
    predicate = check_filter(payload_filter) if payload_filter is not None else None
    stored_ordering = check_ordering(ordering)
    kept, shown = new_signing_secret(scheme)
    now = clock()
    endpoint = Endpoint(
        id=ids.new_id(ids.ENDPOINT),
        workspace_id=workspace_id,
        url=url,
        description=description,
        event_types=filters,
        scheme=scheme,
        secrets=[{"secret": box.encrypt(kept), "expires_at": None}],
        headers=custom,
        filter=predicate,
        enabled=True,
        paused=False,
        max_concurrency=max_concurrency,
        rate_limit=rate_limit,
        ordering=stored_ordering,
        consecutive_failures=0,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    return NewSecret(endpoint, shown)


def get_endpoint(session: Session, endpoint_id: str) -> Endpoint:
    """The endpoint, or :class:`EndpointNotFound`."""
    endpoint = session.get(Endpoint, endpoint_id)
    if endpoint is None:
        raise EndpointNotFound(f"no endpoint {endpoint_id!r}")
    return endpoint


def lock_endpoint(session: Session, endpoint_id: str) -> Endpoint:
    """The endpoint, its row locked for the rest of the transaction."""
    lock_for_write(session)
    endpoint = session.get(Endpoint, endpoint_id, with_for_update=True)
    if endpoint is None:
        get_endpoint(session, endpoint_id)  # raises EndpointNotFound
    assert endpoint is not None
    return endpoint


def list_endpoints(session: Session, *, workspace_id: str | None = None) -> list[Endpoint]:
    """Every endpoint (of one workspace, if given), oldest first."""
    query = select(Endpoint).order_by(Endpoint.id)
    if workspace_id:
        query = query.where(Endpoint.workspace_id == workspace_id)
    return list(session.scalars(query))


def endpoint_page(
    session: Session, *, workspace_id: str | None = None, limit: int, after: str | None = None
) -> list[Endpoint]:
    """Up to ``limit`` endpoints (of one workspace, if given), newest first, older than
    the endpoint id ``after`` (keyset pagination, like the other listings)."""
    if after is not None:
        check_cursor(after, ids.ENDPOINT)
    query = select(Endpoint).order_by(Endpoint.id.desc()).limit(limit)
    if workspace_id:
        query = query.where(Endpoint.workspace_id == workspace_id)
    if after is not None:
        query = query.where(Endpoint.id < after)
    return list(session.scalars(query))


def deliveries_by_status(session: Session, endpoint_id: str) -> dict[str, int]:
    """How many of the endpoint's deliveries are in each status (every status, zeros too)."""
    counts: dict[str, int] = dict.fromkeys(DeliveryStatus, 0)
    query = (
        select(Delivery.status, func.count())
        .where(Delivery.endpoint_id == endpoint_id)
        .group_by(Delivery.status)
    )
    for status, count in session.execute(query):
        counts[status] = int(count)
    return counts


@dataclass(frozen=True, kw_only=True)
class EndpointChanges:
    """What ``endpoints update`` changes; ``None`` leaves a field as it is."""

    url: str | None = None
    event_types: Sequence[str] | None = None
    headers: Mapping[str, str] | None = None
    description: str | None = None
    # 0 clears the endpoint's own limit (the settings' default applies again).
    max_concurrency: int | None = None
    rate_limit: float | None = None
    # A payload filter; an empty mapping removes the endpoint's filter.
    payload_filter: Mapping[str, Any] | None = None
    # ``fifo`` or ``parallel``.
    ordering: str | None = None

    def empty(self) -> bool:
        """Whether nothing would change."""
        fields = (
            self.url,
            self.event_types,
            self.headers,
            self.description,
            self.max_concurrency,
            self.rate_limit,
            self.payload_filter,
            self.ordering,
        )
        return all(v is None for v in fields)


def update_endpoint(
    session: Session,
    endpoint_id: str,
    changes: EndpointChanges,
    *,
    now: datetime,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    allowed_networks: Iterable[IPNetwork] = (),
) -> Endpoint:
    """Validate and apply ``changes``. New event filters apply to events fanned out from
    now on; deliveries already made keep going to the endpoint's (new) URL."""
    if changes.empty():
        raise NothingToUpdate("nothing to update")
    endpoint = lock_endpoint(session, endpoint_id)
    if changes.url is not None:
        check_endpoint_url(changes.url)
        check_registrable(changes.url, allowed_networks=allowed_networks)
        endpoint.url = changes.url
    if changes.event_types is not None:
        if not changes.event_types:
            raise ValidationError("an endpoint needs at least one event type filter (or '*')")
        endpoint.event_types = sorted({check_event_filter(t) for t in changes.event_types})
    if changes.headers is not None:
        endpoint.headers = check_custom_headers(changes.headers, max_bytes=max_header_bytes)
    if changes.description is not None:
        endpoint.description = changes.description or None
    if changes.max_concurrency is not None:
        if changes.max_concurrency < 0:
            raise ValidationError("max concurrency must be at least 1 (0 restores the default)")
        endpoint.max_concurrency = changes.max_concurrency or None
    if changes.rate_limit is not None:
        if changes.rate_limit != 0:
            check_rate_limit(changes.rate_limit, what="rate limit (0 removes it)")
        endpoint.rate_limit = changes.rate_limit or None
        endpoint.rate_tat = None
    if changes.payload_filter is not None:
        endpoint.filter = check_filter(changes.payload_filter) if changes.payload_filter else None
    if changes.ordering is not None:
        endpoint.ordering = check_ordering(changes.ordering)
    endpoint.updated_at = now
    return endpoint


def check_deletion(session: Session, endpoint_id: str, *, force: bool) -> int:
    """How many deliveries deleting the endpoint takes with it.

    Raises ``EndpointNotFound``, and ``DeliveriesPending`` while deliveries are pending
    (unless ``force``): they would never be sent.
    """
    get_endpoint(session, endpoint_id)
    counts = deliveries_by_status(session, endpoint_id)
    pending = counts[DeliveryStatus.PENDING]
    if pending and not force:
        raise DeliveriesPending(
            f"endpoint {endpoint_id} has {pending} pending deliveries that would never be sent",
            endpoint_id=endpoint_id,
            pending=pending,
        )
    return sum(counts.values())


def delete_endpoint(
    sessions: sessionmaker[Session],
    endpoint_id: str,
    *,
    force: bool,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete the endpoint, its deliveries and their attempts; returns how many
    deliveries went. Deliveries go in batches, each its own short transaction.

    Refused as :func:`check_deletion` refuses.
    """
    with sessions() as session:
        check_deletion(session, endpoint_id, force=force)
    deleted = 0
    while True:
        with sessions() as session, session.begin():
            lock_for_write(session)
            batch = list(
                session.scalars(
                    select(Delivery.id).where(Delivery.endpoint_id == endpoint_id).limit(BATCH_SIZE)
                )
            )
            if not batch:
                # Anything fanned out meanwhile goes with the endpoint (ON DELETE CASCADE).
                session.execute(delete(Endpoint).where(Endpoint.id == endpoint_id))
                return deleted
            session.execute(delete(Attempt).where(Attempt.delivery_id.in_(batch)))
            session.execute(delete(Delivery).where(Delivery.id.in_(batch)))
        deleted += len(batch)
        if progress is not None:
            progress(len(batch))


def get_workspace_endpoint(session: Session, workspace_id: str, endpoint_id: str) -> Endpoint:
    """The endpoint if it belongs to ``workspace_id``; another workspace's endpoint is
    :class:`EndpointNotFound` exactly like a missing one, so ids reveal nothing."""
    endpoint = session.get(Endpoint, endpoint_id)
    if endpoint is None or endpoint.workspace_id != workspace_id:
        raise EndpointNotFound(f"no endpoint {endpoint_id!r}")
    return endpoint
