"""Replay protection: remember which signed messages were already accepted.

A captured request stays valid for as long as its timestamp is within the tolerance. To
refuse a second copy inside that window, give ``Webhook`` a ``seen`` store: after a request
verifies, ``Webhook.verify`` records ``"{webhook-id}.{webhook-timestamp}"`` and raises
``ReplayedMessageError`` if it was already there.

The key includes the timestamp on purpose. A sender's retry of the same event carries the
same ``webhook-id`` but a new timestamp and signature; it is not a replay and must not be
refused, or a receiver that failed once could never catch up. Deduplicating *events*
(at-least-once delivery) is a separate job: store processed ``webhook-id`` values alongside
the work they caused, in the same transaction.

``MemorySeenStore`` serves one process. For several processes, implement ``SeenStore`` on a
shared store, e.g. Redis ``SET key 1 NX EX ttl``.

Example::

    >>> store = MemorySeenStore()
    >>> store.add("msg_1.1700000000", ttl=600)
    True
    >>> store.add("msg_1.1700000000", ttl=600)
    False
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["DEFAULT_MAX_ENTRIES", "MemorySeenStore", "SeenStore"]

#: How many keys ``MemorySeenStore`` keeps before forgetting the oldest, bounding memory.
DEFAULT_MAX_ENTRIES = 100_000


class SeenStore(Protocol):
    """Remembers keys for a while; ``add`` must be atomic (check and set in one step)."""

    def add(self, key: str, *, ttl: float) -> bool:
        """Remember ``key`` for ``ttl`` seconds; return ``False`` if it was already there."""
        ...


class MemorySeenStore:
    """An in-process, thread-safe ``SeenStore`` whose keys expire after their TTL.

    It holds at most ``max_entries`` keys; past that the oldest are forgotten first, so a
    flood of valid messages cannot exhaust memory. ``clock`` returns seconds and is
    injectable for tests.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        self._expiries: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, key: str, *, ttl: float) -> bool:
        """Remember ``key`` for ``ttl`` seconds; return ``False`` if it is still remembered."""
        now = self._clock()
        with self._lock:
            self._forget_expired(now)
            expiry = self._expiries.get(key)
            if expiry is not None and expiry > now:
                return False
            # Re-insert so the dict stays in insertion order, which _forget_expired relies on.
            self._expiries.pop(key, None)
            self._expiries[key] = now + ttl
            while len(self._expiries) > self._max_entries:
                del self._expiries[next(iter(self._expiries))]
            return True

    def __len__(self) -> int:
        with self._lock:
            self._forget_expired(self._clock())
            return len(self._expiries)

    def _forget_expired(self, now: float) -> None:
        # Keys are kept in insertion order; with Webhook's constant TTL that is also expiry
        # order, so stop at the first live key. A longer-lived key inserted earlier only
        # delays clean-up of later ones; add() still checks each expiry exactly.
        expiries = self._expiries
        while expiries:
            oldest = next(iter(expiries))
            if expiries[oldest] > now:
                break
            del expiries[oldest]
