"""An endpoint's signing secrets: making a new one, and the ones that sign right now.

``v1`` endpoints sign with HMAC-SHA256 and a ``whsec_`` secret the receiver is given;
``v1a`` endpoints sign with an Ed25519 ``whsk_`` key and the receiver is given its
``whpk_`` public key. What we keep is encrypted at rest (``worker.endpoints.secretbox``);
rotating it is ``worker.endpoints.rotation``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

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
    return [box.decrypt(token) for token in _signing_tokens(endpoint.secrets, now)]


def _signing_tokens(entries: Sequence[dict[str, Any]], now: datetime) -> list[str]:
    return [
        entry["secret"]
        for entry in entries
        if entry.get("expires_at") is None or datetime.fromisoformat(entry["expires_at"]) > now
    ]


class KeyCache:
    """Decrypted signing keys, cached per process, keyed by the ciphertext itself.

    Opening the secret box is a Fernet decryption per key per delivery; a key changes
    only by rotation (or re-encryption under a new encryption key), and either writes
    a new ciphertext: so a rotated secret is simply a new entry and the old one ages out
    (least recently used first). Whether a key in its grace period still signs is
    decided on every call, from its ``expires_at``. Thread-safe.
    """

    def __init__(self, box: SecretBox, size: int = 10_000) -> None:
        self._box = box
        self._size = size
        self._keys: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def signing_keys(self, endpoint: Endpoint, *, now: datetime) -> list[str]:
        """What :func:`signing_keys` returns, decrypting each ciphertext once."""
        return self.signing_keys_of(endpoint.secrets, now=now)

    def signing_keys_of(self, entries: Sequence[dict[str, Any]], *, now: datetime) -> list[str]:
        """The same, from an endpoint's stored ``secrets`` entries."""
        return [self._plaintext(token) for token in _signing_tokens(entries, now)]

    def _plaintext(self, token: str) -> str:
        with self._lock:
            found = self._keys.get(token)
            if found is not None:
                self._keys.move_to_end(token)
                return found
        plaintext = self._box.decrypt(token)
        with self._lock:
            self._keys[token] = plaintext
            if len(self._keys) > self._size:
                self._keys.popitem(last=False)
        return plaintext
