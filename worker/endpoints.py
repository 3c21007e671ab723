"""Registering endpoints and reading their signing keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from catentio_signing import generate_keypair, generate_secret
from outbox import ids
from outbox.clock import Clock, utcnow
from outbox.errors import EndpointNotFound, ValidationError
from outbox.models import Endpoint
from outbox.validation import check_event_filter, check_workspace_id
from worker.request import check_custom_headers
from worker.secretbox import SecretBox
from worker.settings import DEFAULT_MAX_HEADER_BYTES
from worker.urls import check_endpoint_url

SCHEMES = ("v1", "v1a")
"""``v1``: HMAC-SHA256 with a ``whsec_`` secret; ``v1a``: Ed25519 with a ``whsk_`` key."""


@dataclass(frozen=True)
class NewSecret:
    """What the receiver must be given, once: a ``whsec_`` secret or a ``whpk_`` key."""

    endpoint: Endpoint
    secret: str


def new_signing_secret(scheme: str) -> tuple[str, str]:
    """(what we keep to sign, what the receiver verifies with)."""
    if scheme == "v1":
        secret = generate_secret()
        return secret, secret
    if scheme == "v1a":
        return generate_keypair()
    raise ValidationError(f"signing scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")


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
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    clock: Clock = utcnow,
) -> NewSecret:
    """Validate and add an endpoint to ``session``; returns it with its one-time secret."""
    check_workspace_id(workspace_id)
    check_endpoint_url(url)
    if not event_types:
        raise ValidationError("an endpoint needs at least one event type filter (or '*')")
    filters = sorted({check_event_filter(t) for t in event_types})
    custom = check_custom_headers(headers or {}, max_bytes=max_header_bytes)
    if max_concurrency is not None and max_concurrency < 1:
        raise ValidationError("max concurrency must be at least 1")
    if rate_limit is not None and rate_limit <= 0:
        raise ValidationError("rate limit must be positive (deliveries per second)")
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
        enabled=True,
        paused=False,
        max_concurrency=max_concurrency,
        rate_limit=rate_limit,
        consecutive_failures=0,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    return NewSecret(endpoint, shown)


def signing_keys(endpoint: Endpoint, box: SecretBox, *, now: datetime) -> list[str]:
    """The endpoint's secrets that still sign: the current one and any in a grace period."""
    keys = []
    for entry in endpoint.secrets:
        expires = entry.get("expires_at")
        if expires is not None and datetime.fromisoformat(expires) <= now:
            continue
        keys.append(box.decrypt(entry["secret"]))
    return keys


def get_endpoint(session: Session, endpoint_id: str) -> Endpoint:
    """The endpoint, or :class:`EndpointNotFound`."""
    endpoint = session.get(Endpoint, endpoint_id)
    if endpoint is None:
        raise EndpointNotFound(f"no endpoint {endpoint_id!r}")
    return endpoint


def get_workspace_endpoint(session: Session, workspace_id: str, endpoint_id: str) -> Endpoint:
    """The endpoint if it belongs to ``workspace_id``; another workspace's endpoint is
    :class:`EndpointNotFound` exactly like a missing one, so ids reveal nothing."""
    endpoint = session.get(Endpoint, endpoint_id)
    if endpoint is None or endpoint.workspace_id != workspace_id:
        raise EndpointNotFound(f"no endpoint {endpoint_id!r}")
    return endpoint


def endpoint_page(
    session: Session, workspace_id: str, *, limit: int, after: str | None = None
) -> tuple[list[Endpoint], str | None]:
    """Up to ``limit`` endpoints of the workspace, newest first, older than ``after``;
    with the id to continue after (None: no more)."""
    query = select(Endpoint).where(Endpoint.workspace_id == workspace_id)
    if after is not None:
        query = query.where(Endpoint.id < after)
    rows = list(session.scalars(query.order_by(Endpoint.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1].id if more and rows else None
