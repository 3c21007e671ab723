"""The retry schedule as a table: which delay follows which attempt, with and without
jitter and ``Retry-After``."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from worker.policy.schedule import RetrySchedule
from worker.settings import DEFAULT_RETRY_SCHEDULE

S = timedelta(seconds=1)
DELAYS = (5 * S, 300 * S, 1800 * S)


@pytest.mark.parametrize(
    ("attempts", "asked", "expected"),
    [
        (0, None, None),  # nothing failed yet: no retry to schedule
        (1, None, 5 * S),
        (2, None, 300 * S),
        (3, None, 1800 * S),
        (4, None, None),  # the schedule is spent
        (1, 60 * S, 60 * S),  # Retry-After longer than the schedule's delay wins
        (2, 60 * S, 300 * S),  # ... and a shorter one does not bring it forward
        (4, 60 * S, None),  # a spent schedule stays spent, whatever was asked
    ],
)
def test_the_delay_after_each_failed_attempt(
    attempts: int, asked: timedelta | None, expected: timedelta | None
) -> None:
    """Without jitter: the n-th delay after the n-th failure, never sooner than the
    receiver asked, and None once every delay is used."""
    schedule = RetrySchedule(DELAYS, jitter=0.0)
    assert schedule.next_delay(attempts, asked) == expected


@pytest.mark.parametrize("seed", range(20))
def test_jitter_stays_within_its_fraction(seed: int) -> None:
    """With jitter 0.1, each delay lands within ±10 % of the schedule's."""
    schedule = RetrySchedule(DELAYS, jitter=0.1, rng=random.Random(seed))
    for attempts, base in enumerate(DELAYS, start=1):
        delay = schedule.next_delay(attempts)
        assert delay is not None and base * 0.9 <= delay <= base * 1.1


def test_jitter_spreads_deliveries_that_failed_together() -> None:
    """Two hundred deliveries failing at once do not all come back at the same moment."""
    schedule = RetrySchedule(DELAYS, jitter=0.1, rng=random.Random(7))
    assert len({schedule.next_delay(1) for _ in range(200)}) > 150


@pytest.mark.parametrize(
    ("delays", "attempts"), [((), 1), (DELAYS, 4), (DEFAULT_RETRY_SCHEDULE, 8)]
)
def test_max_attempts_is_one_plus_one_per_delay(
    delays: tuple[timedelta, ...], attempts: int
) -> None:
    """The first attempt, then one after each delay (the default: 8 attempts)."""
    assert RetrySchedule(delays).max_attempts == attempts
