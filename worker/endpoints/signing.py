"""An endpoint's signing secrets: making a new one, and the ones that sign right now.

``v1`` endpoints sign with HMAC-SHA256 and a ``whsec_`` secret the receiver is given;
``v1a`` endpoints sign with an Ed25519 ``whsk_`` key and the receiver is given its
``whpk_`` public key. What we keep is encrypted at rest (``worker.endpoints.secretbox``);
rotating it is ``worker.endpoints.rotation``.
"""

from __future__ import annotations

from datetime import datetime

from catentio_signing import generate_keypair, generate_secret
from outbox.errors import ValidationError
from outbox.models import Endpoint
from worker.endpoints.secretbox import SecretBox

SCHEMES = ("v1", "v1a")
"""``v1``: HMAC-SHA256 with a ``whsec_`` secret; ``v1a``: Ed25519 with a ``whsk_`` key."""


def new_signing_secret(scheme: str) -> tuple[str, str]:
    """(what we keep to sign, what the receiver verifies with)."""
    if scheme == "v1":
        secret = generate_secret()
        return secret, secret
    if scheme == "v1a":
        return generate_keypair()
    raise ValidationError(f"signing scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")


def signing_keys(endpoint: Endpoint, box: SecretBox, *, now: datetime) -> list[str]:
    """The endpoint's secrets that still sign: the current one and any in a grace period."""
    keys = []
    for entry in endpoint.secrets:
        expires = entry.get("expires_at")
        if expires is not None and datetime.fromisoformat(expires) <= now:
            continue
        keys.append(box.decrypt(entry["secret"]))
    return keys
