"""The circuit breaker's transitions as tables: an endpoint row (in memory, never
stored) and one attempt's outcome in, the row's new health out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from outbox.models import Endpoint
from worker.policy.circuit import HealthChange, after_attempt, held_until, start_probe
from worker.policy.outcomes import Outcome, Verdict

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
THRESHOLD = 3
DISABLE_AFTER = timedelta(days=5)
NEXT_TRY = NOW + timedelta(minutes=5)

OK = Outcome(Verdict.SUCCEEDED)
FAIL = Outcome(Verdict.RETRY, error_kind="status", reason="HTTP 500")
ABORT = Outcome(Verdict.FAILED, error_kind="aborted", reason="200: receiver aborted the message")
BLOCKED = Outcome(Verdict.FAILED, error_kind="blocked_address", reason="10.0.0.1")
GONE = Outcome(Verdict.GONE, error_kind="gone", reason="410 Gone: endpoint disabled")


def endpoint(**health: Any) -> Endpoint:
    """A healthy, enabled endpoint with ``health`` overriding its counters."""
    values: dict[str, Any] = {
        "id": "ep_1",
        "enabled": True,
        "disabled_reason": None,
        "disabled_at": None,
        "consecutive_failures": 0,
        "failing_since": None,
        "last_success_at": None,
        "last_failure_at": None,
        "probe_delivery_id": None,
        "probe_until": None,
        "updated_at": NOW - timedelta(days=30),
    }
    values.update(health)
    return Endpoint(**values)


@dataclass(frozen=True)
class Health:
    """The counters a transition changes, for comparing in one assertion."""

    enabled: bool
    failures: int
    failing_since: datetime | None
    probe: str | None
    probe_until: datetime | None

    @classmethod
    def of(cls, row: Endpoint) -> Health:
        return cls(
            row.enabled,
            row.consecutive_failures,
            row.failing_since,
            row.probe_delivery_id,
            row.probe_until,
        )


def attempt(row: Endpoint, outcome: Outcome, delivery_id: str = "dlv_a") -> HealthChange:
    return after_attempt(
        row,
        delivery_id,
        outcome,
        now=NOW,
        next_try=NEXT_TRY,
        threshold=THRESHOLD,
        disable_after=DISABLE_AFTER,
    )


EARLIER = NOW - timedelta(hours=1)
PROBING = {"probe_delivery_id": "dlv_p", "probe_until": NOW + timedelta(seconds=30)}

CASES = [
    # (name, before, outcome, delivery, change, after)
    (
        "a success on a healthy endpoint changes nothing",
        {},
        OK,
        "dlv_a",
        HealthChange(),
        Health(True, 0, None, None, None),
    ),
    (
        "a failure below the threshold counts and starts the streak",
        {},
        FAIL,
        "dlv_a",
        HealthChange(),
        Health(True, 1, NOW, None, None),
    ),
    (
        "a blocked address counts as a failure too",
        {"consecutive_failures": 1, "failing_since": EARLIER},
        BLOCKED,
        "dlv_a",
        HealthChange(),
        Health(True, 2, EARLIER, None, None),
    ),
    (
        "the failure that reaches the threshold opens the circuit; it becomes the probe",
        {"consecutive_failures": 2, "failing_since": EARLIER},
        FAIL,
        "dlv_a",
        HealthChange(opened=True),
        Health(True, 3, EARLIER, "dlv_a", NEXT_TRY),
    ),
    (
        "another delivery failing while the probe is in flight leaves the probe alone",
        {"consecutive_failures": 3, "failing_since": EARLIER, **PROBING},
        FAIL,
        "dlv_a",
        HealthChange(),
        Health(True, 4, EARLIER, "dlv_p", PROBING["probe_until"]),
    ),
    (
        "the probe failing again waits for its own next try",
        {"consecutive_failures": 3, "failing_since": EARLIER, **PROBING},
        FAIL,
        "dlv_p",
        HealthChange(),
        Health(True, 4, EARLIER, "dlv_p", NEXT_TRY),
    ),
    (
        "a probe whose time is over is taken over by the delivery that failed",
        {"consecutive_failures": 4, "failing_since": EARLIER, "probe_delivery_id": "dlv_p"},
        FAIL,
        "dlv_a",
        HealthChange(),
        Health(True, 5, EARLIER, "dlv_a", NEXT_TRY),
    ),
    (
        "a success while open closes the circuit and releases the held deliveries",
        {"consecutive_failures": 4, "failing_since": EARLIER, **PROBING},
        OK,
        "dlv_p",
        HealthChange(recovered=True),
        Health(True, 0, None, None, None),
    ),
    (
        "an abort-message answer proves the receiver alive: the streak ends",
        {"consecutive_failures": 4, "failing_since": EARLIER, **PROBING},
        ABORT,
        "dlv_p",
        HealthChange(recovered=True),
        Health(True, 0, None, None, None),
    ),
    (
        "410 Gone disables at once",
        {},
        GONE,
        "dlv_a",
        HealthChange(disabled="410 Gone: endpoint disabled"),
        Health(False, 1, NOW, None, None),
    ),
    (
        "failing for the whole disable_after disables",
        {"consecutive_failures": 1, "failing_since": NOW - DISABLE_AFTER},
        FAIL,
        "dlv_a",
        HealthChange(
            disabled=f"failing since {(NOW - DISABLE_AFTER).isoformat()[:19]}.000Z "
            "(2 consecutive failures)"
        ),
        Health(False, 2, NOW - DISABLE_AFTER, None, None),
    ),
    (
        "a streak from before the endpoint was last disabled starts again",
        {
            "consecutive_failures": 1,
            "failing_since": NOW - DISABLE_AFTER,
            "disabled_at": NOW - timedelta(days=1),
        },
        FAIL,
        "dlv_a",
        HealthChange(),
        Health(True, 2, NOW, None, None),
    ),
]


@pytest.mark.parametrize(
    ("before", "outcome", "delivery_id", "change", "after"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_one_attempt_moves_the_endpoint_health(
    before: dict[str, Any],
    outcome: Outcome,
    delivery_id: str,
    change: HealthChange,
    after: Health,
) -> None:
    """Each row: the endpoint's counters before, one attempt's outcome, what the attempt
    reports and the counters after."""
    row = endpoint(**before)
    assert attempt(row, outcome, delivery_id) == change
    assert Health.of(row) == after


@pytest.mark.parametrize(
    ("outcome", "last_success_at", "last_failure_at"),
    [(OK, NOW, None), (ABORT, None, None), (FAIL, None, NOW), (GONE, None, NOW)],
)
def test_success_and_failure_times(
    outcome: Outcome, last_success_at: datetime | None, last_failure_at: datetime | None
) -> None:
    """Only a 2xx is a success; an abort answer is neither; every failure is stamped."""
    row = endpoint()
    attempt(row, outcome)
    assert (row.last_success_at, row.last_failure_at) == (last_success_at, last_failure_at)


def test_disabling_records_why_and_when() -> None:
    """A disabled endpoint says why and since when; its probe ends with it."""
    row = endpoint(consecutive_failures=3, failing_since=EARLIER, **PROBING)
    attempt(row, GONE, "dlv_p")
    assert (row.disabled_reason, row.disabled_at, row.updated_at) == (GONE.reason, NOW, NOW)


@pytest.mark.parametrize(
    ("health", "delivery_id", "expected"),
    [
        ({}, "dlv_a", None),  # closed: everyone goes
        ({"consecutive_failures": 3}, "dlv_a", None),  # open, nobody probing: it may probe
        ({"consecutive_failures": 3, **PROBING}, "dlv_p", None),  # the probe itself
        ({"consecutive_failures": 3, **PROBING}, "dlv_a", PROBING["probe_until"]),
        (
            {"consecutive_failures": 3, "probe_delivery_id": "dlv_p", "probe_until": NOW},
            "dlv_a",
            None,  # the probe's time is over (its worker may have died)
        ),
        ({"consecutive_failures": 2, **PROBING}, "dlv_a", None),  # below the threshold
    ],
)
def test_who_waits_behind_the_probe(
    health: dict[str, Any], delivery_id: str, expected: datetime | None
) -> None:
    """Only an open circuit with another delivery's probe still in flight holds one back,
    and only until that probe's time is up."""
    assert held_until(endpoint(**health), delivery_id, now=NOW, threshold=THRESHOLD) == expected


@pytest.mark.parametrize(("failures", "probing"), [(0, False), (2, False), (3, True), (9, True)])
def test_an_admitted_delivery_probes_an_open_circuit(failures: int, probing: bool) -> None:
    """Admitted while the circuit is open, a delivery becomes the probe for its lease."""
    row = endpoint(consecutive_failures=failures)
    lease = timedelta(seconds=45)
    started = start_probe(row, "dlv_a", now=NOW, threshold=THRESHOLD, lease=lease)
    assert started is probing
    assert (row.probe_delivery_id, row.probe_until) == (
        ("dlv_a", NOW + lease) if probing else (None, None)
    )
