"""One delivery attempt, start to finish: claim, admit, sign, send, record.

The row decides, not the message. An attempt starts only by winning an atomic claim
(pending, due, unleased → leased until the attempt's deadline plus a margin), so a
duplicated or replayed broker message results in no second HTTP request.

The claim transaction locks the endpoint's row; a disabled endpoint's delivery is kept
as ``skipped`` (replayable), otherwise ``worker.policy.admission`` decides whether it goes now
or is held (paused, circuit open, concurrency or rate limit) without spending an attempt.
The attempt and the delivery's new state, the endpoint's health and any operational
event are written in one transaction, guarded by the lease token.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from outbox import ids
from outbox.clock import Clock, utcnow
from outbox.database import is_outage, lock_for_write
from outbox.models import Attempt, Delivery, DeliveryStatus, Endpoint, Event, Trigger
from worker.endpoints.secretbox import SecretBox
from worker.endpoints.signing import KeyCache
from worker.errors import DatabaseUnavailable, InvalidEndpointURL
from worker.fanout.deliveries import skipped_note
from worker.http.errors import InternalFailure, InvalidURL
from worker.http.headers import build_headers, headers_for_record
from worker.http.sender import Sender, SendResult
from worker.http.urls import check_endpoint_url
from worker.policy import admission, circuit, notices
from worker.policy.admission import Admission, Hold
from worker.policy.outcomes import EXHAUSTED, Outcome, Verdict, classify
from worker.policy.schedule import RetrySchedule
from worker.settings import Settings
from worker.telemetry.metrics import NO_METRICS, Metrics, status_class

log = structlog.get_logger(__name__)


SUCCESS_STAMP_INTERVAL = timedelta(seconds=1)
"""A healthy endpoint's ``last_success_at`` is at most this stale (see
``_note_healthy_success``)."""

FALLBACK_PROBE_COOLDOWN = timedelta(minutes=1)
"""Wait after a failed probe that has no retry of its own, with an empty schedule."""


class NotRecorded(StrEnum):
    """Why a call of ``Deliverer.deliver`` recorded no attempt."""

    NOT_CLAIMED = "not_claimed"
    """Not due, not pending, leased, or another worker won the claim: a duplicate or
    early message, which does nothing."""
    POSTPONED = "postponed"
    """Held by the endpoint's policy (``held_by`` says which) without spending an attempt."""
    LEASE_LOST = "lease_lost"
    """The request went out, but the lease had passed to another worker, whose record
    wins (the receiver may see the event twice: at-least-once)."""


@dataclass(frozen=True)
class Result:
    """What ``Deliverer.deliver`` did. ``status``: the delivery's status after the
    attempt (or the skip) was recorded, or why nothing was. ``retry_in``: when to ring
    again, if at all; ``held_by``: why it was postponed."""

    status: DeliveryStatus | NotRecorded
    retry_in: timedelta | None = None
    held_by: Hold | None = None
    # Deliveries this attempt released from behind the circuit breaker: due now.
    released: tuple[str, ...] = ()


NOT_CLAIMED = Result(NotRecorded.NOT_CLAIMED)


@dataclass(frozen=True)
class _Claim:
    token: str
    delivery: Delivery
    event: Event
    endpoint: Endpoint
    # Set when something unexpected failed after the claim was won: the attempt is
    # recorded with this error instead of being sent.
    failure: InternalFailure | None = None


def _internal(stage: str, exc: BaseException) -> InternalFailure:
    """An unexpected error after a won claim, as the attempt's error (logged once)."""
    log.error("delivery.internal_error", stage=stage, error=repr(exc)[:500])
    failure = InternalFailure(f"internal error while {stage}: {type(exc).__name__}: {exc}")
    failure.__cause__ = exc
    return failure


class Deliverer:
    """Runs attempts. Thread-safe: every call uses its own sessions."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        sender: Sender,
        box: SecretBox,
        settings: Settings,
        schedule: RetrySchedule | None = None,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._sessions = session_factory
        self._sender = sender
        self._keys = KeyCache(box)
        self._settings = settings
        self._schedule = schedule or RetrySchedule(
            settings.retry_schedule, jitter=settings.retry_jitter
        )
        self._clock = clock
        self._admission = Admission(settings, rng or random.Random())
        self._metrics = metrics

    def deliver(self, delivery_id: str) -> Result:
        """Make the attempt that is due for ``delivery_id``, if this call wins the claim
        and the endpoint's policy admits it.

        Raises :class:`~outbox.errors.DatabaseUnavailable` when the database fails; no
        attempt is spent and the caller may simply try again.
        """
        structlog.contextvars.bind_contextvars(delivery_id=delivery_id)
        try:
            claimed = self._claim(delivery_id)
        except SQLAlchemyError as exc:
            if not is_outage(exc):
                raise  # a statement refused for what it carried: a bug, not an outage
            self._metrics.own_failure("database")
            raise DatabaseUnavailable(f"claiming {delivery_id}: {exc}") from exc
        if isinstance(claimed, Result):
            return claimed
        return self._attempt(claimed)

    # -- claim and admission -------------------------------------------------------

    def _claim(self, delivery_id: str) -> _Claim | Result:
        now = self._clock()
        token = secrets.token_hex(16)
        with self._sessions() as session, session.begin():
            lock_for_write(session)
            claimable = (
                Delivery.id == delivery_id,
                Delivery.status == DeliveryStatus.PENDING,
                Delivery.next_attempt_at <= now,
                or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
            )
            # A duplicate or early message ends here, without touching the endpoint.
            # The event comes along: one round trip fewer on the hot path.
            found = session.execute(
                select(Delivery.endpoint_id, Delivery.held_by, Event)
                .join(Event, Event.id == Delivery.event_id)
                .where(*claimable)
            ).one_or_none()
            if found is None:
                log.debug("delivery.not_claimed")
                return NOT_CLAIMED
            endpoint = _lock_endpoint(session, found.endpoint_id)
            delivery = session.scalars(
                update(Delivery)
                .where(*claimable)
                .values(
                    lease_until=now + self._settings.lease_duration,
                    lease_token=token,
                    held_by=None,
                    updated_at=now,
                )
                .returning(Delivery),
                execution_options={"synchronize_session": False},
            ).one_or_none()
            if delivery is None:  # another worker won it meanwhile
                log.debug("delivery.not_claimed")
                return NOT_CLAIMED
            structlog.contextvars.bind_contextvars(
                event_id=delivery.event_id,
                endpoint_id=endpoint.id,
                attempt=delivery.attempt_count + 1,
            )
            if not endpoint.enabled:
                return self._skip(session, delivery, endpoint, now)
            try:
                wait = self._admission.decide(session, endpoint, delivery, found.held_by, now)
            except SQLAlchemyError:
                raise
            except Exception as exc:  # e.g. a limit edited by hand into inf: keep the
                # lease, drop what admission changed, and record the failure as an attempt.
                session.refresh(endpoint)
                return _Claim(
                    token, delivery, found.Event, endpoint, _internal("admitting it", exc)
                )
            if wait is not None:
                admission.hold(session, delivery.id, token, wait, now)
                self._metrics.delivery_held(wait.reason, endpoint_id=endpoint.id)
                return Result(NotRecorded.POSTPONED, wait.delay, held_by=wait.reason)
            return _Claim(token, delivery, found.Event, endpoint)

    def _skip(
        self, session: Session, delivery: Delivery, endpoint: Endpoint, now: datetime
    ) -> Result:
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id)
            .values(**_skipped(endpoint, now))
            .execution_options(synchronize_session=False)
        )
        log.info("delivery.skipped", reason=endpoint.disabled_reason)
        return Result(DeliveryStatus.SKIPPED)

    # -- the attempt ---------------------------------------------------------------

    def _attempt(self, claim: _Claim) -> Result:
        delivery, endpoint = claim.delivery, claim.endpoint
        started_at = self._clock()
        number = delivery.attempt_count + 1
        headers: dict[str, str] = {}
        if claim.failure is not None:
            result = SendResult(duration=0.0, error=claim.failure)
        else:
            try:
                headers, result = self._send(claim, number, started_at)
            except Exception as exc:  # anything our side did not expect, before a response
                result = SendResult(duration=0.0, error=_internal("sending it", exc))
        outcome = classify(
            result, now=self._clock(), retry_after_cap=self._settings.retry_after_cap
        )
        retry_in, verdict = self._next(delivery, outcome)
        attempt = _attempt_row(
            claim, number, started_at, endpoint.url, headers, result, outcome, verdict
        )
        try:
            status, released = self._record(claim, attempt, outcome, retry_in)
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # what we tried to write is at fault, not the database
            result = SendResult(duration=result.duration, error=_internal("recording it", exc))
            outcome = classify(
                result, now=self._clock(), retry_after_cap=self._settings.retry_after_cap
            )
            retry_in, verdict = self._next(delivery, outcome)
            attempt = _attempt_row(
                claim, number, started_at, endpoint.url, {}, result, outcome, verdict
            )
            status, released = self._record(claim, attempt, outcome, retry_in)
        self._metrics.attempt_finished(
            verdict,
            status_class(attempt.response_status),
            result.duration,
            endpoint_id=endpoint.id,
        )
        if number == 1:
            self._metrics.first_attempt_latency(
                (started_at - claim.event.created_at).total_seconds()
            )
        log.info(
            "delivery.attempted",
            outcome=verdict,
            status=status,
            status_code=attempt.response_status,
            error_kind=outcome.error_kind,
            duration_ms=round(result.duration * 1000, 1),
            retry_in_s=round(retry_in.total_seconds(), 1) if retry_in else None,
        )
        return Result(
            status, retry_in if status == DeliveryStatus.PENDING else None, released=released
        )

    def _send(
        self, claim: _Claim, number: int, started_at: datetime
    ) -> tuple[dict[str, str], SendResult]:
        """Sign and POST the stored body; the headers sent and what came back."""
        delivery, event, endpoint = claim.delivery, claim.event, claim.endpoint
        body = event.body.encode("utf-8")
        headers = build_headers(
            event_id=event.id,
            event_type=event.type,
            delivery_id=delivery.id,
            attempt=number,
            timestamp=started_at,
            body=body,
            signing_keys=self._keys.signing_keys(endpoint, now=started_at),
            custom=endpoint.headers,
        )
        try:
            check_endpoint_url(endpoint.url)
        except InvalidEndpointURL as exc:  # stored before today's rules, or edited in SQL
            return headers, SendResult(duration=0.0, error=InvalidURL(str(exc)))
        return headers, self._sender.post(endpoint.url, body, headers)

    def _next(self, delivery: Delivery, outcome: Outcome) -> tuple[timedelta | None, str]:
        """When to try again (``None``: never) and the attempt's recorded verdict."""
        retry_in = None
        if outcome.verdict is Verdict.RETRY:
            retry_in = self._schedule.next_delay(delivery.cycle_attempts + 1, outcome.retry_after)
        verdict = outcome.verdict.value
        if outcome.verdict is Verdict.RETRY and retry_in is None:
            verdict = EXHAUSTED  # retryable, but the schedule is spent
        return retry_in, verdict

    def _record(
        self, claim: _Claim, attempt: Attempt, outcome: Outcome, retry_in: timedelta | None
    ) -> tuple[DeliveryStatus | NotRecorded, tuple[str, ...]]:
        """Write the attempt, the delivery's new state and the endpoint's health, in one
        transaction; returns the delivery's new status and the deliveries it released."""
        try:
            with self._sessions() as session, session.begin():
                lock_for_write(session)
                return self._write(session, claim, attempt, outcome, retry_in)
        except SQLAlchemyError as exc:
            if not is_outage(exc):
                raise  # the rows we tried to write are at fault: recorded as internal
            # The request went out but cannot be recorded. No attempt is counted; the
            # lease expires and the sweeper rings again: at-least-once, never lost.
            self._metrics.own_failure("database")
            raise DatabaseUnavailable(
                f"recording an attempt of {claim.delivery.id}: {exc}"
            ) from exc

    def _write(
        self,
        session: Session,
        claim: _Claim,
        attempt: Attempt,
        outcome: Outcome,
        retry_in: timedelta | None,
    ) -> tuple[DeliveryStatus | NotRecorded, tuple[str, ...]]:
        now = self._clock()
        delivery = claim.delivery
        if outcome.verdict is Verdict.SUCCEEDED and _note_healthy_success(
            session, delivery.endpoint_id, now
        ):
            # The common case: a healthy endpoint said 2xx. Nothing for the breaker to
            # decide, so no endpoint lock to queue behind the other workers for.
            status = DeliveryStatus.SUCCEEDED
            return (
                (status, ())
                if self._store(session, claim, attempt, outcome, status, {}, now)
                else (NotRecorded.LEASE_LOST, ())
            )
        endpoint = _lock_endpoint(session, delivery.endpoint_id)
        change = circuit.HealthChange()
        if endpoint.enabled:
            next_try = now + (retry_in or self._cooldown(delivery))
            change = circuit.after_attempt(
                endpoint,
                delivery.id,
                outcome,
                now=now,
                next_try=next_try,
                threshold=self._settings.circuit_threshold,
                disable_after=self._settings.disable_after,
            )
        extra: dict[str, Any] = {}
        exhausted = False
        if outcome.verdict is Verdict.SUCCEEDED:
            status = DeliveryStatus.SUCCEEDED
        elif retry_in is not None and endpoint.enabled:
            status = DeliveryStatus.PENDING
            extra.update(next_attempt_at=now + retry_in, rung_at=now)
        elif retry_in is not None:
            # Its endpoint is disabled now: keep it, replayable, like those never tried.
            status = DeliveryStatus.SKIPPED
            kept_as = _skipped(endpoint, now)
            extra.update(kept_as, last_error=f"{kept_as['last_error']}; last try: {outcome.reason}")
        else:
            status = DeliveryStatus.FAILED
            exhausted = outcome.verdict is Verdict.RETRY
        if not self._store(session, claim, attempt, outcome, status, extra, now):
            return NotRecorded.LEASE_LOST, ()
        events = self._settings.operational_events
        if change.disabled is not None:
            skipped = _skip_waiting(session, endpoint, now)
            log.warning("endpoint.deliveries_skipped", deliveries=skipped)
            if events:
                notices.endpoint_disabled(session, endpoint, now=now)
        released: tuple[str, ...] = ()
        if change.recovered:
            released = _release_held(session, endpoint.id, now)
            log.info("endpoint.deliveries_released", deliveries=len(released))
        if exhausted and events:
            notices.delivery_exhausted(
                session,
                delivery,
                attempts=delivery.attempt_count + 1,
                status_code=attempt.response_status,
                error_kind=outcome.error_kind,
                now=now,
            )
        return status, released

    def _store(
        self,
        session: Session,
        claim: _Claim,
        attempt: Attempt,
        outcome: Outcome,
        status: DeliveryStatus,
        extra: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Write the delivery's new state (if we still hold its lease) and the attempt.
        False: the lease was lost and the transaction rolled back."""
        values: dict[str, Any] = {
            "attempt_count": Delivery.attempt_count + 1,
            "cycle_attempts": Delivery.cycle_attempts + 1,
            "lease_until": None,
            "lease_token": None,
            "held_by": None,
            "next_trigger": Trigger.SCHEDULED,
            "last_status_code": attempt.response_status,
            "last_error_kind": outcome.error_kind,
            "last_error": outcome.reason,
            "updated_at": now,
        }
        if status != DeliveryStatus.PENDING:
            values.update(status=status, next_attempt_at=None, completed_at=now)
        values.update(extra)
        kept = session.execute(
            update(Delivery)
            .where(Delivery.id == claim.delivery.id, Delivery.lease_token == claim.token)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if kept.rowcount != 1:  # type: ignore[attr-defined]
            # Our lease ran out and another worker took the delivery over; its record
            # wins. The receiver may see this event twice (at-least-once).
            log.warning("delivery.lease_lost")
            session.rollback()
            return False
        session.add(attempt)
        return True

    def _cooldown(self, delivery: Delivery) -> timedelta:
        """How long an open circuit waits after a probe that will not retry itself."""
        steps = len(self._schedule.delays)
        if steps == 0:
            return FALLBACK_PROBE_COOLDOWN
        return self._schedule.next_delay(min(delivery.cycle_attempts + 1, steps)) or (
            FALLBACK_PROBE_COOLDOWN
        )


def _note_healthy_success(session: Session, endpoint_id: str, now: datetime) -> bool:
    """Record a success on an endpoint whose circuit is closed and unprobed without
    taking its lock; False (nothing written) when its health must be decided under the
    endpoint lock instead.

    Every worker delivering to a busy endpoint would otherwise queue on that one row
    after every 2xx. A plain read decides; ``last_success_at`` is refreshed at most once
    per ``SUCCESS_STAMP_INTERVAL`` by a conditional (atomic) UPDATE. The one race left: a
    failure recorded between our read and our commit is not reset by this success; the
    endpoint's next success, which reads it, resets it.
    """
    health_now = session.execute(
        select(
            Endpoint.enabled,
            Endpoint.consecutive_failures,
            Endpoint.failing_since,
            Endpoint.probe_delivery_id,
            Endpoint.last_success_at,
        ).where(Endpoint.id == endpoint_id)
    ).one_or_none()
    if health_now is None:
        return False
    enabled, failures, failing_since, probe, last_success = health_now
    if not enabled or failures or failing_since is not None or probe is not None:
        return False
    if last_success is not None and now - last_success < SUCCESS_STAMP_INTERVAL:
        return True
    stale_before = now - SUCCESS_STAMP_INTERVAL
    result = session.execute(
        update(Endpoint)
        .where(
            Endpoint.id == endpoint_id,
            Endpoint.enabled.is_(True),
            Endpoint.consecutive_failures == 0,
            Endpoint.failing_since.is_(None),
            Endpoint.probe_delivery_id.is_(None),
            # In the WHERE, not only in the read above: of the threads that read a
            # stale stamp at once, one writes it (and takes the row lock), not all.
            or_(Endpoint.last_success_at.is_(None), Endpoint.last_success_at < stale_before),
        )
        .values(last_success_at=now)
        .execution_options(synchronize_session=False)
    )
    if int(result.rowcount) == 1:  # type: ignore[attr-defined]
        return True
    # Another thread stamped it first, or its health changed meanwhile: read again.
    again = session.execute(
        select(
            Endpoint.enabled,
            Endpoint.consecutive_failures,
            Endpoint.failing_since,
            Endpoint.probe_delivery_id,
        ).where(Endpoint.id == endpoint_id)
    ).one_or_none()
    return (
        again is not None
        and bool(again[0])
        and not again[1]
        and again[2] is None
        and (again[3] is None)
    )


def _lock_endpoint(session: Session, endpoint_id: str) -> Endpoint:
    """Load and lock the endpoint's row. Every transaction that writes an endpoint and
    its deliveries locks the endpoint first, so claims and records of one endpoint queue
    instead of deadlocking. ``FOR NO KEY UPDATE`` (``key_share``) does not block the
    poller inserting deliveries that reference the endpoint."""
    query = select(Endpoint).where(Endpoint.id == endpoint_id).with_for_update(key_share=True)
    return session.scalars(query).one()


def _skipped(endpoint: Endpoint, now: datetime) -> dict[str, Any]:
    """Column values of a delivery kept as ``skipped`` because ``endpoint`` is disabled."""
    return {
        "status": DeliveryStatus.SKIPPED,
        "lease_until": None,
        "lease_token": None,
        "held_by": None,
        "next_attempt_at": None,
        "completed_at": now,
        "updated_at": now,
        "last_error": skipped_note(endpoint),
    }


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
        .values(**_skipped(endpoint, now))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _release_held(session: Session, endpoint_id: str, now: datetime) -> tuple[str, ...]:
    """The circuit closed: deliveries held behind the probe are due now. The actor rings
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


def _attempt_row(
    claim: _Claim,
    number: int,
    started_at: datetime,
    url: str,
    headers: dict[str, str],
    result: SendResult,
    outcome: Outcome,
    verdict: str,
) -> Attempt:
    response = result.response
    error = result.error or (response.body_error if response else None)
    return Attempt(
        id=ids.new_id(ids.ATTEMPT),
        delivery_id=claim.delivery.id,
        number=number,
        trigger=claim.delivery.next_trigger,
        url=url,
        started_at=started_at,
        duration_ms=round(result.duration * 1000, 3),
        request_headers=headers_for_record(headers, claim.endpoint.headers),
        response_status=response.status_code if response else None,
        response_headers=response.headers if response else None,
        response_body=_text(response.body) if response else None,
        response_truncated=response.truncated if response else False,
        error_kind=outcome.error_kind,
        error=str(error) if error else outcome.reason,
        outcome=verdict,
    )


def _text(body: bytes) -> str:
    # PostgreSQL text cannot hold NUL; a receiver's body is shown, not replayed.
    return body.decode("utf-8", "replace").replace("\x00", "\ufffd")
