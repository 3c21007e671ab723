"""Decrypted signing keys, cached per process.

Opening a secret box costs a Fernet decryption per key per delivery; an endpoint's keys
change only when they are rotated, and a rotation (or a re-encryption under a new
encryption key) writes a new ciphertext. So the cache is keyed by the ciphertext itself:
a rotated secret is simply a new entry, and an old one ages out. Expiry of a key in its
grace period is decided on every call, from the stored ``expires_at``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from worker.secretbox import SecretBox

DEFAULT_SIZE = 10_000
"""Ciphertexts kept (an endpoint has one, or two during a rotation's grace period)."""


class KeyCache:
    """Thread-safe, bounded (least recently used out) ciphertext → plaintext cache."""

    def __init__(self, box: SecretBox, size: int = DEFAULT_SIZE) -> None:
        self._box = box
        self._size = size
        self._keys: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def signing_keys(self, secrets: Sequence[dict[str, Any]], *, now: datetime) -> list[str]:
        """The plaintext keys of the entries that still sign at ``now``."""
        keys = []
        for entry in secrets:
            expires = entry.get("expires_at")
            if expires is not None and datetime.fromisoformat(expires) <= now:
                continue
            keys.append(self._plaintext(entry["secret"]))
        return keys

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
