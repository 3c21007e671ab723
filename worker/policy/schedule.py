"""The retry schedule: how long a delivery waits after each failed attempt.

The delays come from ``CATENTIO_RETRY_SCHEDULE`` (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
10 h by default), each stretched or shrunk by up to ``jitter`` so that deliveries failed
together do not come back together. A receiver's ``Retry-After`` (see
``worker.policy.outcomes``) is a floor: we never come back sooner than it asked.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass
class RetrySchedule:
    """Delays after the 1st, 2nd, … failed attempt of a delivery, with jitter."""

    delays: tuple[timedelta, ...]
    jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random)

    @property
    def max_attempts(self) -> int:
        """One first attempt plus one after each delay."""
        return len(self.delays) + 1

    def next_delay(self, attempts: int, asked: timedelta | None = None) -> timedelta | None:
        """Delay before attempt ``attempts + 1``, or ``None`` when the schedule is spent.

        ``attempts`` counts the attempts already made since the delivery was (re)opened.
        A receiver's ``Retry-After`` is honoured: we never come back sooner than it asked.
        """
        if attempts < 1 or attempts > len(self.delays):
            return None
        base = self.delays[attempts - 1]
        factor = 1 + self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 1.0
        delay = base * factor
        return max(delay, asked) if asked is not None else delay
