"""How long the attempts in flight in a process have been going, coarsely: enough for
the recorder to wait only for those likely to finish soon.

The recorder writes finished attempts in batches, and after one finishes it waits a few
milliseconds for others still in flight to record with it. An attempt that has been
going for a second or more (a slow receiver, one that never answers, held to the
attempt's deadline) will not be among them, and waiting for it only leaves the slots
of the ones just finished empty for that long, on every batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Bucket = int
"""When an attempt started, in whole grains of the clock: what :meth:`Ages.started`
returns and :meth:`Ages.finished` takes back."""


class Ages:
    """Attempts in flight, counted by start time in ``grain``-second buckets (a few
    hundred buckets at most for attempts held to a deadline of minutes). Thread-safe:
    attempts start and finish on the sending loop, the recorder asks from its own
    thread."""

    def __init__(self, grain: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self._grain = grain
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[Bucket, int] = {}

    def started(self) -> Bucket:
        """Count an attempt that starts now; returns its bucket, for :meth:`finished`."""
        bucket = int(self._clock() / self._grain)
        with self._lock:
            self._buckets[bucket] = self._buckets.get(bucket, 0) + 1
        return bucket

    def finished(self, bucket: Bucket) -> None:
        """An attempt counted in ``bucket`` is no longer in flight."""
        with self._lock:
            left = self._buckets.get(bucket, 0) - 1
            if left > 0:
                self._buckets[bucket] = left
            else:
                self._buckets.pop(bucket, None)

    def younger_than(self, age: float) -> int:
        """Attempts in flight that started less than about ``age`` seconds ago (to
        within a grain)."""
        oldest = int((self._clock() - age) / self._grain)
        with self._lock:
            return sum(n for bucket, n in self._buckets.items() if bucket >= oldest)

    def __len__(self) -> int:
        with self._lock:
            return sum(self._buckets.values())
