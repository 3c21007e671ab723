"""Rotating an endpoint's signing secret without breaking its receiver.

Standard Webhooks rotation: a new secret is added and signs from now on; the secrets it
replaces keep signing until a grace period ends, so every request carries one signature
per active secret and a receiver holding either the old or the new one accepts it. The
receiver switches to the new secret at its own pace within the grace period; afterwards
only the new signature is sent.

Ed25519 endpoints (``v1a``) rotate the same way: we keep the new ``whsk_`` signing key
(encrypted), the receiver is shown its ``whpk_`` public key. A rotation may also switch
scheme, e.g. from ``v1`` to ``v1a``; during the grace both kinds of signature are sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from outbox.envelope import isoformat
from outbox.errors import ValidationError
from outbox.models import Endpoint
from worker.endpoints.registry import lock_endpoint
from worker.endpoints.secretbox import SecretBox
from worker.endpoints.signing import new_signing_secret
from worker.errors import Conflict

DEFAULT_GRACE = timedelta(hours=24)
"""How long replaced secrets keep signing after a rotation."""

MAX_ACTIVE_SECRETS = 5
"""Most secrets that may sign at once; more would mean rotating faster than receivers
can follow (and a longer signature header on every request)."""


@dataclass(frozen=True)
class Rotation:
    """What a rotation did. ``secret``: what the receiver needs, shown only once."""

    endpoint: Endpoint
    secret: str
    scheme: str
    replaced_until: datetime | None
    """When the replaced secrets stop signing (``None``: nothing was replaced)."""


def _expiry(entry: dict[str, Any]) -> datetime | None:
    value = entry.get("expires_at")
    return datetime.fromisoformat(value) if value is not None else None


def rotate_secret(
    session: Session,
    box: SecretBox,
    endpoint_id: str,
    *,
    grace: timedelta = DEFAULT_GRACE,
    scheme: str | None = None,
    now: datetime,
) -> Rotation:
    """Add a new signing secret to the endpoint; the current ones expire after ``grace``.

    ``grace`` of zero replaces them at once. ``scheme`` (``v1`` or ``v1a``) defaults to
    the endpoint's own. Raises ``EndpointNotFound``, ``ValidationError`` for a negative
    grace or an unknown scheme, and ``Conflict`` when the endpoint already has
    ``MAX_ACTIVE_SECRETS`` signing.
    """
    if grace < timedelta(0):
        raise ValidationError("the grace period cannot be negative")
    endpoint = lock_endpoint(session, endpoint_id)
    scheme = scheme or endpoint.scheme
    kept, shown = new_signing_secret(scheme)
    until = now + grace
    active: list[dict[str, Any]] = []
    for entry in endpoint.secrets:
        expires = _expiry(entry)
        if expires is not None and expires <= now:
            continue  # already expired: nothing to keep
        if grace == timedelta(0):
            continue
        active.append({**entry, "expires_at": isoformat(min(expires or until, until))})
    if len(active) + 1 > MAX_ACTIVE_SECRETS:
        raise Conflict(
            f"endpoint {endpoint_id} already has {len(active)} secrets signing; wait for "
            "earlier grace periods to end, or rotate with a grace of 0"
        )
    endpoint.secrets = [{"secret": box.encrypt(kept), "expires_at": None}, *active]
    endpoint.scheme = scheme
    endpoint.updated_at = now
    return Rotation(endpoint, shown, scheme, until if active else None)
