"""The pure outcome → next-state functions, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from outbox import DeliveryStatus
from worker.engine.transition import next_state, plan
from worker.policy.outcomes import Outcome, Verdict
from worker.policy.schedule import RetrySchedule

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SCHEDULE = RetrySchedule((timedelta(seconds=5), timedelta(minutes=5)), jitter=0.0)
RETRY_500 = Outcome(Verdict.RETRY, error_kind="status", reason="HTTP 500")
SLOW_DOWN = Outcome(
    Verdict.RETRY, error_kind="status", reason="HTTP 429", retry_after=timedelta(minutes=9)
)


@pytest.mark.parametrize(
    ("outcome", "attempts_before", "retry_in", "verdict"),
    [
        (Outcome(Verdict.SUCCEEDED), 0, None, "succeeded"),
        (RETRY_500, 0, timedelta(seconds=5), "retry"),
        (RETRY_500, 1, timedelta(minutes=5), "retry"),
        (RETRY_500, 2, None, "exhausted"),  # the schedule is spent
        (SLOW_DOWN, 0, timedelta(minutes=9), "retry"),  # never sooner than asked
        (Outcome(Verdict.FAILED, error_kind="aborted"), 0, None, "failed"),
        (Outcome(Verdict.GONE, error_kind="gone"), 0, None, "gone"),
    ],
)
def test_plan(
    outcome: Outcome, attempts_before: int, retry_in: timedelta | None, verdict: str
) -> None:
    decided = plan(outcome, attempts_before, SCHEDULE)
    assert (decided.retry_in, decided.verdict) == (retry_in, verdict)


@pytest.mark.parametrize(
    ("outcome", "retry_in", "enabled", "status", "exhausted", "next_at"),
    [
        (Outcome(Verdict.SUCCEEDED), None, True, DeliveryStatus.SUCCEEDED, False, None),
        (
            RETRY_500,
            timedelta(seconds=5),
            True,
            DeliveryStatus.PENDING,
            False,
            NOW + timedelta(seconds=5),
        ),
        (RETRY_500, None, True, DeliveryStatus.FAILED, True, None),
        # its endpoint was disabled (by this attempt or meanwhile): kept, replayable
        (RETRY_500, timedelta(seconds=5), False, DeliveryStatus.SKIPPED, False, None),
        (Outcome(Verdict.GONE, error_kind="gone"), None, False, DeliveryStatus.FAILED, False, None),
        (
            Outcome(Verdict.FAILED, error_kind="blocked_address"),
            None,
            True,
            DeliveryStatus.FAILED,
            False,
            None,
        ),
    ],
)
def test_next_state(
    outcome: Outcome,
    retry_in: timedelta | None,
    enabled: bool,
    status: str,
    exhausted: bool,
    next_at: datetime | None,
) -> None:
    state = next_state(
        outcome,
        retry_in,
        status_code=500,
        endpoint_enabled=enabled,
        skipped_note="endpoint disabled: 410 Gone",
        now=NOW,
    )
    assert (state.status, state.exhausted) == (status, exhausted)
    assert state.values["next_attempt_at"] == next_at
    assert state.values["lease_token"] is None and state.values["lease_until"] is None
    finished = status != DeliveryStatus.PENDING
    assert (state.values.get("completed_at") == NOW) is finished
    if status == DeliveryStatus.SKIPPED:
        assert state.values["last_error"] == "endpoint disabled: 410 Gone; last try: HTTP 500"
    if status == DeliveryStatus.PENDING:
        assert state.values["rung_at"] == NOW
