"""The per-endpoint rate limit: deliveries per second, held without spending attempts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from outbox import DeliveryStatus
from worker.policy.admission import Hold
from worker.policy.limits import rate_decision

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rate", "admitted", "spacing"),
    [(1.0, 1, 1.0), (4.0, 4, 0.25), (0.5, 1, 2.0), (2.5, 2, 0.4)],
)
def test_rate_allows_a_one_second_burst_then_spaces_evenly(
    rate: float, admitted: int, spacing: float
) -> None:
    """At ``rate`` per second, ``max(1, floor(rate))`` start at once and each later one
    gets the next slot, 1/rate apart (GCRA with reservations)."""
    tat = None
    waits = []
    for _ in range(admitted + 3):
        decision = rate_decision(rate, tat, now=T0)
        tat = decision.tat
        waits.append(decision.wait)
    assert waits[:admitted] == [None] * admitted
    assert [w.total_seconds() for w in waits[admitted:]] == pytest.approx(  # type: ignore[union-attr]
        [spacing, 2 * spacing, 3 * spacing]
    )


def test_an_idle_endpoint_gets_its_burst_back() -> None:
    """Credit does not pile up beyond one burst, and comes back after a quiet spell."""
    decision = rate_decision(2.0, T0 - timedelta(hours=1), now=T0)
    assert decision.wait is None and decision.tat == T0 + timedelta(seconds=0.5)


@pytest.mark.parametrize("where", ["endpoint", "settings"])
def test_deliveries_over_the_rate_wait_for_their_slot_without_spending_attempts(
    make_harness: Any, database_url: str, where: str
) -> None:
    """With 2 per second, of six due deliveries two go now and four are held for their
    slots (0.5 s apart, attempts untouched); each goes when its slot comes."""
    overrides = {"rate_limit": 2.0} if where == "settings" else {}
    harness = make_harness(database_url, **overrides)
    harness.endpoint(**({"rate_limit": 2.0} if where == "endpoint" else {}))
    ids = harness.deliveries(6)
    results = [harness.deliver(d) for d in ids]
    assert [r.status for r in results[:2]] == [DeliveryStatus.SUCCEEDED] * 2
    held = results[2:]
    assert {r.held_by for r in held} == {Hold.RATE}
    assert [r.retry_in.total_seconds() for r in held] == [0.5, 1.0, 1.5, 2.0]  # type: ignore[union-attr]
    assert [harness.delivery(d).attempt_count for d in ids[2:]] == [0, 0, 0, 0]
    assert len(harness.receiver.received()) == 2

    for delivery_id in ids[2:]:
        assert harness.due(delivery_id).status == DeliveryStatus.SUCCEEDED
    starts = [harness.attempts(d)[0].started_at for d in ids]
    gaps = [(b - a).total_seconds() for a, b in pairwise(starts[1:])]
    assert gaps == [0.5, 0.5, 0.5, 0.5]
