"""Replay protection: the in-memory seen store and its use by Webhook.verify."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from catentio_signing import (
    MemorySeenStore,
    NoMatchingSignatureError,
    ReplayedMessageError,
    Webhook,
)

MakeWebhook = Callable[..., Webhook]
Signed = Callable[..., dict[str, str]]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


def test_store_reports_a_key_only_once_within_its_ttl() -> None:
    """add() is True the first time and False while the key is remembered."""
    store = MemorySeenStore()
    assert store.add("a", ttl=10) is True
    assert store.add("a", ttl=10) is False
    assert store.add("b", ttl=10) is True


def test_store_forgets_keys_after_their_ttl() -> None:
    """A key is accepted again once its TTL has passed, and expired keys are dropped."""
    clock = FakeClock()
    store = MemorySeenStore(clock=clock)
    store.add("a", ttl=10)
    clock.value += 9.9
    assert store.add("a", ttl=10) is False
    clock.value += 0.2
    assert len(store) == 0
    assert store.add("a", ttl=10) is True


def test_store_with_mixed_ttls_checks_each_expiry() -> None:
    """A long-lived key inserted first does not keep a short-lived later key alive."""
    clock = FakeClock()
    store = MemorySeenStore(clock=clock)
    store.add("long", ttl=100)
    store.add("short", ttl=1)
    clock.value += 2
    assert store.add("short", ttl=1) is True
    assert store.add("long", ttl=100) is False


def test_store_is_bounded_and_forgets_the_oldest() -> None:
    """Past max_entries the oldest keys are forgotten first."""
    store = MemorySeenStore(max_entries=3)
    for key in "abcd":
        store.add(key, ttl=60)
    assert len(store) == 3
    assert store.add("a", ttl=60) is True
    assert store.add("d", ttl=60) is False


def test_store_refuses_a_zero_capacity() -> None:
    """max_entries below 1 is a configuration error."""
    with pytest.raises(ValueError, match="max_entries"):
        MemorySeenStore(max_entries=0)


def test_store_add_is_atomic_across_threads() -> None:
    """When many threads add the same key at once, exactly one of them wins."""
    store = MemorySeenStore()
    barrier = threading.Barrier(16)
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        outcome = store.add("same", ttl=60)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 15 + [True]


def test_verify_rejects_an_identical_second_request(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """With a seen store, the same signed request is accepted once, then ReplayedMessageError."""
    wh = make_webhook(seen=MemorySeenStore())
    headers = signed(body)
    assert wh.verify(body, headers) == json.loads(body)
    with pytest.raises(ReplayedMessageError) as info:
        wh.verify(body, headers)
    assert info.value.status_code == 400


def test_verify_accepts_a_retry_with_a_new_timestamp(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, now: int
) -> None:
    """A sender's retry (same id, new timestamp and signature) is not a replay."""
    wh = make_webhook(seen=MemorySeenStore())
    assert wh.verify(body, signed(body, timestamp=now - 5)) == json.loads(body)
    assert wh.verify(body, signed(body, timestamp=now)) == json.loads(body)


def test_verify_records_only_requests_that_verified(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, other_secret: str
) -> None:
    """A forged request with a real id does not block the genuine one."""
    wh = make_webhook(seen=MemorySeenStore())
    with pytest.raises(NoMatchingSignatureError):
        wh.verify(body, signed(body, secret=other_secret))
    assert wh.verify(body, signed(body)) == json.loads(body)


def test_verify_remembers_for_twice_the_tolerance(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """The TTL given to the store covers the whole window in which a timestamp is valid."""
    ttls: list[float] = []

    class RecordingStore:
        def add(self, key: str, *, ttl: float) -> bool:
            ttls.append(ttl)
            return True

    make_webhook(seen=RecordingStore(), tolerance=120).verify(body, signed(body))
    assert ttls == [240]
