"""The count of attempts in flight by age that tells the recorder which ones are worth
waiting for."""

from __future__ import annotations

import threading

from worker.engine.ages import Ages


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_attempts_are_counted_by_age_until_they_finish() -> None:
    clock = Clock()
    ages = Ages(grain=0.1, clock=clock)
    old = [ages.started() for _ in range(3)]
    clock.now += 2.0
    young = [ages.started() for _ in range(2)]
    assert len(ages) == 5
    assert ages.younger_than(1.0) == 2  # the three started two seconds ago are not
    assert ages.younger_than(5.0) == 5
    ages.finished(young[0])
    ages.finished(old[0])
    assert (ages.younger_than(1.0), len(ages)) == (1, 3)
    clock.now += 1.5  # now all of them are old
    assert ages.younger_than(1.0) == 0 and len(ages) == 3
    for bucket in (*old[1:], young[1]):
        ages.finished(bucket)
    assert len(ages) == 0 and ages.younger_than(100.0) == 0


def test_a_bucket_finished_more_often_than_started_does_not_go_negative() -> None:
    ages = Ages(clock=Clock())
    bucket = ages.started()
    ages.finished(bucket)
    ages.finished(bucket)
    assert len(ages) == 0
    assert ages.started() == bucket and len(ages) == 1


def test_starts_and_finishes_from_many_threads_balance() -> None:
    ages = Ages()

    def churn() -> None:
        for _ in range(2000):
            ages.finished(ages.started())
        ages.started()

    threads = [threading.Thread(target=churn) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ages) == 8 and ages.younger_than(60.0) == 8
