"""Recording finished attempts, many in one transaction.

Each attempt's row and its delivery's new state are written together, guarded by the
lease token (an attempt whose lease was lost meanwhile is not recorded: the worker that
took the delivery over records its own). Two paths, in one transaction:

* **a 2xx from a healthy endpoint** (the common case): nothing for the circuit breaker
  to decide, so no endpoint lock. The deliveries are updated with one statement per
  (claim, status code), the attempts inserted with one multi-row ``INSERT``, and the
  endpoint's ``last_success_at`` refreshed by a conditional ``UPDATE`` at most once per
  ``SUCCESS_STAMP_INTERVAL`` (the condition is in the ``WHERE``, so of the recorders
  that read a stale stamp at once, one writes it).
* **everything else** (a failure, or a success that closes a circuit): the endpoint's
  row is locked and ``worker.policy.circuit`` decides, one attempt at a time, each in
  its own savepoint; disabling skips the endpoint's waiting deliveries and tells the
  workspace, a closing circuit releases the held ones, an exhausted delivery is
  announced (operational events).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

import structlog
from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from outbox import ids
from outbox.clock import Clock
from outbox.models import Attempt, Delivery, DeliveryStatus, Endpoint, Trigger
from worker.engine.claim import Claim, ids_in
from worker.engine.results import NotRecorded
from worker.engine.transition import next_state, skipped_values
from worker.fanout.deliveries import skipped_note
from worker.http.headers import headers_for_record
from worker.http.sender import SendResult
from worker.policy import circuit, notices
from worker.policy.admission import Hold
from worker.policy.outcomes import Outcome, Verdict
from worker.policy.schedule import RetrySchedule
from worker.settings import Settings

log = structlog.get_logger(__name__)

D = cast(Table, Delivery.__table__)
E = cast(Table, Endpoint.__table__)
A = cast(Table, Attempt.__table__)

SUCCESS_STAMP_INTERVAL = timedelta(seconds=1)
"""A healthy endpoint's ``last_success_at`` is at most this stale."""

FALLBACK_PROBE_COOLDOWN = timedelta(minutes=1)
"""Wait after a failed probe that has no retry of its own, with an empty schedule."""


@dataclass(frozen=True)
class Finished:
    """An attempt that was made and now needs recording."""

    claim: Claim
    started_at: datetime
    headers: dict[str, str]
    result: SendResult
    outcome: Outcome
    retry_in: timedelta | None
    verdict: str


@dataclass(frozen=True)
class Recorded:
    """What recording did: the delivery's status (or that its lease was lost), when to
    ring it again (pending only), and the deliveries a closing circuit released."""

    delivery_id: str
    status: DeliveryStatus | NotRecorded
    retry_in: timedelta | None = None
    released: tuple[str, ...] = ()


@cache
def _health(postgres: bool) -> Any:
    return select(
        E.c.id,
        E.c.enabled,
        E.c.consecutive_failures,
        E.c.failing_since,
        E.c.probe_delivery_id,
        E.c.last_success_at,
    ).where(ids_in(E.c.id, postgres))


@cache
def _succeed(postgres: bool) -> Any:
    return (
        update(D)
        .where(ids_in(D.c.id, postgres), D.c.lease_token == bindparam("token"))
        .values(
            status=DeliveryStatus.SUCCEEDED,
            attempt_count=D.c.attempt_count + 1,
            cycle_attempts=D.c.cycle_attempts + 1,
            lease_until=None,
            lease_token=None,
            held_by=None,
            next_trigger=Trigger.SCHEDULED,
            next_attempt_at=None,
            last_status_code=bindparam("code"),
            last_error_kind=None,
            last_error=None,
            updated_at=bindparam("now"),
            completed_at=bindparam("now"),
        )
        .returning(D.c.id)
    )


_STAMP = (
    update(E)
    .where(
        E.c.id == bindparam("endpoint_id"),
        E.c.enabled.is_(True),
        E.c.consecutive_failures == 0,
        E.c.failing_since.is_(None),
        E.c.probe_delivery_id.is_(None),
        or_(E.c.last_success_at.is_(None), E.c.last_success_at < bindparam("stale_before")),
    )
    .values(last_success_at=bindparam("now"))
)


def attempt_row(item: Finished) -> dict[str, Any]:
    """The ``attempts`` row of a finished attempt."""
    claim, result, outcome = item.claim, item.result, item.outcome
    response = result.response
    error = result.error or (response.body_error if response else None)
    return {
        "id": ids.new_id(ids.ATTEMPT),
        "delivery_id": claim.delivery_id,
        "number": claim.attempt_count + 1,
        "trigger": claim.next_trigger,
        "url": claim.target.url,
        "started_at": item.started_at,
        "duration_ms": round(result.duration * 1000, 3),
        "request_headers": headers_for_record(item.headers, claim.target.headers),
        "response_status": response.status_code if response else None,
        "response_headers": response.headers if response else None,
        "response_body": _text(response.body) if response else None,
        "response_truncated": response.truncated if response else False,
        "error_kind": outcome.error_kind,
        "error": str(error) if error else outcome.reason,
        "outcome": item.verdict,
    }


def _text(body: bytes) -> str:
    # PostgreSQL text cannot hold NUL; a receiver's body is shown, not replayed.
    return body.decode("utf-8", "replace").replace("\x00", "\ufffd")


class Recorder:
    """Records batches of finished attempts inside a transaction its caller opened."""

    def __init__(self, settings: Settings, schedule: RetrySchedule, clock: Clock) -> None:
        self._settings = settings
        self._schedule = schedule
        self._clock = clock

    def record(self, session: Session, items: Sequence[Finished]) -> list[Recorded]:
        """Write every item in ``session``'s transaction."""
        now = self._clock()
        connection = session.connection()
        recorded: list[Recorded] = []
        fast = [
            i for i in items if i.outcome.verdict is Verdict.SUCCEEDED and i.claim.target.healthy
        ]
        if fast:
            endpoint_ids = sorted({i.claim.target.id for i in fast})
            healthy = {
                row.id: row
                for row in connection.execute(
                    _health(connection.dialect.name == "postgresql"), {"ids": endpoint_ids}
                )
                if row.enabled
                and row.consecutive_failures == 0
                and row.failing_since is None
                and row.probe_delivery_id is None
            }
            fast = [i for i in fast if i.claim.target.id in healthy]
            recorded += self._successes(session, fast, healthy, now)
        fast_ids = {i.claim.delivery_id for i in fast}
        slow = [i for i in items if i.claim.delivery_id not in fast_ids]
        if slow:
            recorded += self._one_by_one(session, slow, now)
        return recorded

    def _successes(
        self, session: Session, items: list[Finished], healthy: dict[str, Any], now: datetime
    ) -> list[Recorded]:
        connection = session.connection()
        groups: dict[tuple[str, int | None], list[Finished]] = defaultdict(list)
        for item in items:
            response = item.result.response
            groups[(item.claim.token, response.status_code if response else None)].append(item)
        kept: set[str] = set()
        for (token, code), group in groups.items():
            rows = connection.execute(
                _succeed(connection.dialect.name == "postgresql"),
                {
                    "ids": [i.claim.delivery_id for i in group],
                    "token": token,
                    "code": code,
                    "now": now,
                },
            )
            kept.update(row.id for row in rows)
        if kept:
            connection.execute(
                insert(A), [attempt_row(i) for i in items if i.claim.delivery_id in kept]
            )
        stale_before = now - SUCCESS_STAMP_INTERVAL
        for endpoint_id, row in healthy.items():
            last = row.last_success_at
            if last is None or last < stale_before:
                connection.execute(
                    _STAMP, {"endpoint_id": endpoint_id, "now": now, "stale_before": stale_before}
                )
        recorded = []
        for item in items:
            claim = item.claim
            bound = _bound(claim)
            if claim.delivery_id not in kept:
                # Our lease ran out and another worker took the delivery over; its record
                # wins. The receiver may see this event twice (at-least-once).
                bound.warning("delivery.lease_lost")
                recorded.append(Recorded(claim.delivery_id, NotRecorded.LEASE_LOST))
                continue
            _log_attempt(bound, item, DeliveryStatus.SUCCEEDED)
            recorded.append(Recorded(claim.delivery_id, DeliveryStatus.SUCCEEDED))
        return recorded

    def _one_by_one(self, session: Session, items: list[Finished], now: datetime) -> list[Recorded]:
        endpoint_ids = sorted({i.claim.target.id for i in items})
        endpoints = {
            e.id: e
            for e in session.scalars(
                select(Endpoint)
                .where(Endpoint.id.in_(endpoint_ids))
                .order_by(Endpoint.id)
                .with_for_update(key_share=True)
            )
        }
        recorded = []
        for item in items:
            endpoint = endpoints.get(item.claim.target.id)
            if endpoint is None:  # deleted meanwhile, its deliveries with it
                recorded.append(Recorded(item.claim.delivery_id, NotRecorded.LEASE_LOST))
                continue
            nested = session.begin_nested()
            outcome = self._write(session, item, endpoint, now)
            if outcome.status == NotRecorded.LEASE_LOST:
                nested.rollback()
                session.refresh(endpoint)
            else:
                nested.commit()
            recorded.append(outcome)
        return recorded

    def _write(
        self, session: Session, item: Finished, endpoint: Endpoint, now: datetime
    ) -> Recorded:
        claim, outcome, retry_in = item.claim, item.outcome, item.retry_in
        bound = _bound(claim)
        change = circuit.HealthChange()
        if endpoint.enabled:
            change = circuit.after_attempt(
                endpoint,
                claim.delivery_id,
                outcome,
                now=now,
                next_try=now + (retry_in or self._cooldown(claim.cycle_attempts)),
                threshold=self._settings.circuit_threshold,
                disable_after=self._settings.disable_after,
            )
        response = item.result.response
        state = next_state(
            outcome,
            retry_in,
            status_code=response.status_code if response else None,
            endpoint_enabled=endpoint.enabled,
            skipped_note=skipped_note(endpoint),
            now=now,
        )
        session.flush()
        kept = session.execute(
            update(Delivery)
            .where(Delivery.id == claim.delivery_id, Delivery.lease_token == claim.token)
            .values(
                attempt_count=Delivery.attempt_count + 1,
                cycle_attempts=Delivery.cycle_attempts + 1,
                **state.values,
            )
            .execution_options(synchronize_session=False)
        )
        if kept.rowcount != 1:  # type: ignore[attr-defined]
            # Our lease ran out and another worker took the delivery over; its record
            # wins. The receiver may see this event twice (at-least-once).
            bound.warning("delivery.lease_lost")
            return Recorded(claim.delivery_id, NotRecorded.LEASE_LOST)
        row = attempt_row(item)
        session.execute(insert(A), [row])
        events = self._settings.operational_events
        if change.disabled is not None:
            skipped = _skip_waiting(session, endpoint, now)
            bound.warning("endpoint.deliveries_skipped", deliveries=skipped)
            if events:
                notices.endpoint_disabled(session, endpoint, now=now)
        released: tuple[str, ...] = ()
        if change.recovered:
            released = _release_held(session, endpoint.id, now)
            bound.info("endpoint.deliveries_released", deliveries=len(released))
        if state.exhausted and events:
            notices.delivery_exhausted(
                session,
                session.get_one(Delivery, claim.delivery_id),
                attempts=claim.attempt_count + 1,
                status_code=row["response_status"],
                error_kind=outcome.error_kind,
                now=now,
            )
        session.flush()
        _log_attempt(bound, item, state.status)
        return Recorded(
            claim.delivery_id,
            state.status,
            retry_in if state.status == DeliveryStatus.PENDING else None,
            released,
        )

    def _cooldown(self, cycle_attempts: int) -> timedelta:
        """How long an open circuit waits after a probe that will not retry itself."""
        steps = len(self._schedule.delays)
        if steps == 0:
            return FALLBACK_PROBE_COOLDOWN
        return self._schedule.next_delay(min(cycle_attempts + 1, steps)) or (
            FALLBACK_PROBE_COOLDOWN
        )


def _bound(claim: Claim) -> Any:
    return log.bind(
        delivery_id=claim.delivery_id,
        event_id=claim.event_id,
        endpoint_id=claim.target.id,
        attempt=claim.attempt_count + 1,
    )


def _log_attempt(bound: Any, item: Finished, status: str) -> None:
    response = item.result.response
    bound.info(
        "delivery.attempted",
        outcome=item.verdict,
        status=status,
        status_code=response.status_code if response else None,
        error_kind=item.outcome.error_kind,
        duration_ms=round(item.result.duration * 1000, 1),
        retry_in_s=round(item.retry_in.total_seconds(), 1) if item.retry_in else None,
    )


def _skip_waiting(session: Session, endpoint: Endpoint, now: datetime) -> int:
    """Keep the just-disabled endpoint's waiting deliveries as ``skipped``. Deliveries
    under another worker's lease are left to that worker, which records them."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.endpoint_id == endpoint.id,
            Delivery.status == DeliveryStatus.PENDING,
            or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
        )
        .values(**skipped_values(skipped_note(endpoint), now))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _release_held(session: Session, endpoint_id: str, now: datetime) -> tuple[str, ...]:
    """The circuit closed: deliveries held behind the probe are due now. The engine rings
    them once this transaction commits (their own delayed messages, or the sweeper,
    would too, later)."""
    result = session.scalars(
        update(Delivery)
        .where(
            Delivery.endpoint_id == endpoint_id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.held_by == Hold.CIRCUIT,
        )
        .values(next_attempt_at=now, held_by=None, rung_at=now, updated_at=now)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return tuple(result)
