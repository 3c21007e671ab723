"""Per-workspace request limits with the ``limits`` library: Redis when ``REDIS_URL`` is
set (so every API process shares one budget), process memory otherwise.

Reads (GET) and writes (POST, PATCH, DELETE) have separate budgets. Each request
costs one hit; the answer carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (the unix second at which the window frees up), and a refused
one ``Retry-After``. If Redis cannot be reached the request is let through (and
logged): losing the limiter must not take the API down with it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import SlidingWindowCounterRateLimiter

log = structlog.get_logger("worker.api.ratelimit")


@dataclass(frozen=True)
class Quota:
    """The outcome of one hit."""

    allowed: bool
    limit: int
    remaining: int
    reset: float

    def headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers (and ``Retry-After`` when refused)."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(math.ceil(self.reset)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset - time.time())))
        return headers


class RateLimiter:
    """Two budgets (read, write) per identity, in one storage."""

    def __init__(
        self, *, read: str, write: str, redis_url: str | None = None, namespace: str = "catentio"
    ) -> None:
        self._read: RateLimitItem = parse(read)
        self._write: RateLimitItem = parse(write)
        storage: Storage
        if redis_url:
            storage = RedisStorage(redis_url, key_prefix=f"{namespace}:api-ratelimit")
        else:
            storage = MemoryStorage()
        self._storage = storage
        self._strategy = SlidingWindowCounterRateLimiter(storage)

    def hit(self, identity: str, *, write: bool) -> Quota:
        """Spend one request of ``identity``'s read or write budget."""
        item = self._write if write else self._read
        kind = "write" if write else "read"
        try:
            allowed = self._strategy.hit(item, kind, identity)
            stats = self._strategy.get_window_stats(item, kind, identity)
        except Exception as exc:  # the storage's own errors (redis, connection)
            log.warning("api.ratelimit_unavailable", error=repr(exc))
            return Quota(True, item.amount, item.amount, time.time() + item.get_expiry())
        return Quota(allowed, item.amount, stats.remaining, stats.reset_time)

    def close(self) -> None:
        """Release the storage's connections."""
        if isinstance(self._storage, RedisStorage):
            self._storage.storage.close()
