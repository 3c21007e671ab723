"""The circuit breaker: endpoint health, one probe at a time, automatic disabling.

Every attempt's outcome updates its endpoint's counters in the transaction that records
the attempt, with the endpoint's row locked:

* A success resets them. So does a deliberate ``webhook-delivery: abort-message``: the
  receiver answered and made a decision about that one message, so it is alive.
* A failure counts. From ``circuit_threshold`` consecutive failures on, the circuit is
  **open**: one delivery at a time is the probe (``probe_delivery_id``) and the others
  are held until ``probe_until``, without spending attempts. While the probe is in
  flight ``probe_until`` is the end of its lease; after it fails, its next attempt time,
  so the endpoint is tried at the pace of one delivery's retry schedule, not of all of
  them. The first success closes the circuit and releases the held deliveries.
* An endpoint that has failed continuously for ``disable_after`` (5 days by default), or
  that answered ``410 Gone``, is disabled with the reason recorded.

:func:`after_attempt` is the transition, a pure function of the row and the outcome;
:func:`disable` and :func:`clear_failures` are also how an operator switches an
endpoint off and on (``worker.endpoints.switches``), so both ways agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from outbox.envelope import isoformat
from outbox.models import Endpoint
from worker.policy.outcomes import ABORTED, Outcome, Verdict

log = structlog.get_logger(__name__)


def is_open(endpoint: Endpoint, threshold: int) -> bool:
    """Whether the endpoint's circuit is open (it is failing; one probe at a time)."""
    return endpoint.consecutive_failures >= threshold


def held_until(
    endpoint: Endpoint, delivery_id: str, *, now: datetime, threshold: int
) -> datetime | None:
    """Until when ``delivery_id`` must wait for the probe, or ``None`` if it may go."""
    if not is_open(endpoint, threshold):
        return None
    if endpoint.probe_delivery_id in (None, delivery_id):
        return None
    if endpoint.probe_until is None or endpoint.probe_until <= now:
        return None  # the probe finished or its worker died: someone else may probe
    return endpoint.probe_until


def start_probe(
    endpoint: Endpoint, delivery_id: str, *, now: datetime, threshold: int, lease: timedelta
) -> bool:
    """If the circuit is open, make ``delivery_id`` the probe for the length of its lease.
    Returns whether it is the probe."""
    if not is_open(endpoint, threshold):
        return False
    endpoint.probe_delivery_id = delivery_id
    endpoint.probe_until = now + lease
    return True


@dataclass(frozen=True)
class HealthChange:
    """What one attempt did to its endpoint's health."""

    disabled: str | None = None
    """Why the endpoint was disabled by this attempt, if it was."""
    recovered: bool = False
    """The circuit was open and is now closed: held deliveries may go."""
    opened: bool = False
    """The circuit opened with this attempt."""


def _alive(outcome: Outcome) -> bool:
    return outcome.verdict is Verdict.SUCCEEDED or outcome.error_kind == ABORTED


def after_attempt(
    endpoint: Endpoint,
    delivery_id: str,
    outcome: Outcome,
    *,
    now: datetime,
    next_try: datetime,
    threshold: int,
    disable_after: timedelta,
) -> HealthChange:
    """Update ``endpoint`` (a locked row) for one attempt's ``outcome``.

    ``next_try`` is when this delivery could be tried again: if it is the probe of an
    open circuit, nobody else is tried before then.
    """
    if _alive(outcome):
        was_failing = is_open(endpoint, threshold) or endpoint.probe_delivery_id is not None
        clear_failures(endpoint)
        if outcome.verdict is Verdict.SUCCEEDED:
            endpoint.last_success_at = now
        if was_failing:
            log.info("endpoint.circuit_closed")
        return HealthChange(recovered=was_failing)

    endpoint.consecutive_failures += 1
    endpoint.last_failure_at = now
    restarted = endpoint.disabled_at is not None and (
        endpoint.failing_since is None or endpoint.failing_since < endpoint.disabled_at
    )
    if endpoint.failing_since is None or restarted:
        # A streak that began before the endpoint was last disabled ended with it:
        # re-enabling gives the endpoint a fresh start.
        endpoint.failing_since = now
    if outcome.verdict is Verdict.GONE:
        return HealthChange(disabled=_disabled(endpoint, outcome.reason or "410 Gone", now))
    if now - endpoint.failing_since >= disable_after:
        reason = (
            f"failing since {isoformat(endpoint.failing_since)} "
            f"({endpoint.consecutive_failures} consecutive failures)"
        )
        return HealthChange(disabled=_disabled(endpoint, reason, now))
    if not is_open(endpoint, threshold):
        return HealthChange()
    opened = endpoint.consecutive_failures == threshold
    if opened:
        log.warning("endpoint.circuit_opened", failures=endpoint.consecutive_failures)
    probe_over = endpoint.probe_until is None or endpoint.probe_until <= now
    if endpoint.probe_delivery_id in (None, delivery_id) or probe_over:
        endpoint.probe_delivery_id = delivery_id
        endpoint.probe_until = next_try
    return HealthChange(opened=opened)


def _disabled(endpoint: Endpoint, reason: str, now: datetime) -> str:
    disable(endpoint, reason, now=now)
    log.warning("endpoint.disabled", reason=reason)
    return reason


def disable(endpoint: Endpoint, reason: str, *, now: datetime) -> None:
    """Take ``endpoint`` (a locked row) out of delivery with ``reason``; a probe in
    flight ends with it. The breaker and an operator disable an endpoint the same way."""
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = now
    endpoint.probe_delivery_id = None
    endpoint.probe_until = None
    endpoint.updated_at = now


def clear_failures(endpoint: Endpoint) -> None:
    """Forget the endpoint's failure streak: its circuit closes and no probe runs. After
    a success, and when an operator enables it again (a fresh start)."""
    endpoint.consecutive_failures = 0
    endpoint.failing_since = None
    endpoint.probe_delivery_id = None
    endpoint.probe_until = None
