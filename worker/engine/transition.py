"""From an attempt's outcome to the delivery's next state: pure functions, no I/O.

``plan`` decides, from the classified outcome and the retry schedule, when (if ever)
the delivery is tried again and what the attempt is recorded as; ``next_state`` turns
that, and whether the endpoint is still enabled after the attempt's effect on its
health, into the delivery's new column values. The endpoint's own health change is
``worker.policy.circuit.after_attempt``, decided under the endpoint's row lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from outbox.models import DeliveryStatus, Trigger
from worker.policy.outcomes import EXHAUSTED, Outcome, Verdict
from worker.policy.schedule import RetrySchedule


@dataclass(frozen=True)
class Plan:
    """When to try again (``None``: never) and the attempt's recorded outcome."""

    retry_in: timedelta | None
    verdict: str


def plan(outcome: Outcome, cycle_attempts: int, schedule: RetrySchedule) -> Plan:
    """``cycle_attempts``: attempts made since the delivery was (re)opened, before this one."""
    if outcome.verdict is not Verdict.RETRY:
        return Plan(None, outcome.verdict.value)
    retry_in = schedule.next_delay(cycle_attempts + 1, outcome.retry_after)
    return Plan(retry_in, outcome.verdict.value if retry_in is not None else EXHAUSTED)


def skipped_values(note: str, now: datetime) -> dict[str, Any]:
    """Column values of a delivery kept as ``skipped`` because its endpoint is disabled
    (``note``: what the delivery's ``last_error`` says about it)."""
    return {
        "status": DeliveryStatus.SKIPPED,
        "lease_until": None,
        "lease_token": None,
        "held_by": None,
        "next_attempt_at": None,
        "completed_at": now,
        "updated_at": now,
        "last_error": note,
    }


@dataclass(frozen=True)
class NextState:
    """The delivery's new status and column values; ``exhausted``: its schedule ran out
    (a ``webhook.delivery.exhausted`` notice is due)."""

    status: DeliveryStatus
    values: dict[str, Any]
    exhausted: bool = False


def next_state(
    outcome: Outcome,
    retry_in: timedelta | None,
    *,
    status_code: int | None,
    endpoint_enabled: bool,
    skipped_note: str,
    now: datetime,
) -> NextState:
    """The delivery after an attempt (``endpoint_enabled``: after the attempt's effect on
    its endpoint; ``skipped_note``: why, if it is disabled). The attempt counters are
    the caller's (an increment, not a value)."""
    values: dict[str, Any] = {
        "lease_until": None,
        "lease_token": None,
        "held_by": None,
        "next_trigger": Trigger.SCHEDULED,
        "last_status_code": status_code,
        "last_error_kind": outcome.error_kind,
        "last_error": outcome.reason,
        "updated_at": now,
    }
    exhausted = False
    if outcome.verdict is Verdict.SUCCEEDED:
        status = DeliveryStatus.SUCCEEDED
    elif retry_in is not None and endpoint_enabled:
        status = DeliveryStatus.PENDING
        values.update(next_attempt_at=now + retry_in, rung_at=now)
    elif retry_in is not None:
        # Its endpoint is disabled now: keep it, replayable, like those never tried.
        status = DeliveryStatus.SKIPPED
        kept_as = skipped_values(skipped_note, now)
        values.update(kept_as, last_error=f"{kept_as['last_error']}; last try: {outcome.reason}")
    else:
        status = DeliveryStatus.FAILED
        exhausted = outcome.verdict is Verdict.RETRY
    if status != DeliveryStatus.PENDING:
        values.setdefault("status", status)
        values.setdefault("next_attempt_at", None)
        values.setdefault("completed_at", now)
    return NextState(status, values, exhausted)
