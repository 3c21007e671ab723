"""Decrypted signing keys are cached per process, keyed by ciphertext."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from outbox.models import Endpoint
from tests.support.services import TEST_KEY
from worker.endpoints.secretbox import SecretBox
from worker.endpoints.signing import KeyCache, signing_keys

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def endpoint(secrets: list[dict[str, Any]]) -> Endpoint:
    return Endpoint(id="ep_x", secrets=secrets)


def test_each_ciphertext_is_opened_once_and_a_rotation_is_a_new_entry() -> None:
    box = SecretBox([TEST_KEY])
    opened: list[str] = []
    real = box.decrypt

    def counting(token: str) -> str:
        opened.append(token)
        return real(token)

    box.decrypt = counting  # type: ignore[method-assign]
    cache = KeyCache(box)
    old, new = box.encrypt("whsec_old"), box.encrypt("whsec_new")
    before = endpoint([{"secret": old, "expires_at": None}])
    assert cache.signing_keys(before, now=NOW) == ["whsec_old"]
    assert cache.signing_keys(before, now=NOW) == ["whsec_old"]
    rotated = endpoint(
        [
            {"secret": new, "expires_at": None},
            {"secret": old, "expires_at": "2026-01-02T00:00:00+00:00"},
        ]
    )
    assert cache.signing_keys(rotated, now=NOW) == ["whsec_new", "whsec_old"]
    later = datetime(2026, 1, 3, tzinfo=UTC)
    assert cache.signing_keys(rotated, now=later) == ["whsec_new"]  # the grace is over
    assert opened == [old, new]
    assert cache.signing_keys(rotated, now=later) == signing_keys(rotated, box, now=later)


def test_the_cache_is_bounded() -> None:
    box = SecretBox([TEST_KEY])
    cache = KeyCache(box, size=2)
    tokens = [box.encrypt(f"whsec_{i}") for i in range(3)]
    for token in tokens:
        cache.signing_keys(endpoint([{"secret": token, "expires_at": None}]), now=NOW)
    assert len(cache._keys) == 2 and tokens[0] not in cache._keys
