"""One delivery attempt, start to finish: claim, sign, send, record.

The row decides, not the message. An attempt starts only by winning an atomic claim
(pending, due, unleased → leased until the attempt's deadline plus a margin), so a
duplicated or replayed broker message results in no second HTTP request. The attempt
and the delivery's new state are written in one transaction, guarded by the lease token.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from outbox import ids
from outbox.clock import Clock, utcnow
from outbox.errors import DatabaseUnavailable, InvalidEndpointURL
from outbox.models import Attempt, Delivery, DeliveryStatus, Endpoint, Event, Trigger
from worker.endpoints import signing_keys
from worker.errors import InvalidURL
from worker.policy import Outcome, RetrySchedule, Verdict, classify
from worker.request import build_headers, headers_for_record
from worker.secretbox import SecretBox
from worker.sender import Sender, SendResult
from worker.settings import Settings
from worker.urls import check_endpoint_url

log = structlog.get_logger("worker.delivery")

PAUSED_RECHECK = timedelta(seconds=60)
"""How often a delivery to a paused endpoint looks again (no attempt is spent)."""


@dataclass(frozen=True)
class Result:
    """What ``Deliverer.deliver`` did. ``retry_in``: when to ring again, if at all."""

    status: str
    retry_in: timedelta | None = None


NOT_CLAIMED = Result("not_claimed")


@dataclass(frozen=True)
class _Claim:
    token: str
    delivery: Delivery
    event: Event
    endpoint: Endpoint


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
    ) -> None:
        self._sessions = session_factory
        self._sender = sender
        self._box = box
        self._settings = settings
        self._schedule = schedule or RetrySchedule(
            settings.retry_schedule, jitter=settings.retry_jitter
        )
        self._clock = clock

    def deliver(self, delivery_id: str) -> Result:
        """Make the attempt that is due for ``delivery_id``, if this call wins the claim.

        Raises :class:`~outbox.errors.DatabaseUnavailable` when the database fails before
        the request is sent; no attempt is spent and the caller may simply try again.
        """
        structlog.contextvars.bind_contextvars(delivery_id=delivery_id)
        try:
            claim = self._claim(delivery_id)
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"claiming {delivery_id}: {exc}") from exc
        if claim is None:
            log.debug("delivery.not_claimed")
            return NOT_CLAIMED
        structlog.contextvars.bind_contextvars(
            event_id=claim.event.id,
            endpoint_id=claim.endpoint.id,
            attempt=claim.delivery.attempt_count + 1,
        )
        if not claim.endpoint.enabled:
            return self._finish_skipped(claim)
        if claim.endpoint.paused:
            return self._postpone(claim, PAUSED_RECHECK, reason="endpoint paused")
        return self._attempt(claim)

    # -- claim ---------------------------------------------------------------------

    def _claim(self, delivery_id: str) -> _Claim | None:
        now = self._clock()
        token = secrets.token_hex(16)
        with self._sessions() as session, session.begin():
            won = session.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.status == DeliveryStatus.PENDING,
                    Delivery.next_attempt_at <= now,
                    or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
                )
                .values(
                    lease_until=now + self._settings.lease_duration,
                    lease_token=token,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if won.rowcount != 1:  # type: ignore[attr-defined]
                return None
            delivery = session.get_one(Delivery, delivery_id)
            event = session.get_one(Event, delivery.event_id)
            endpoint = session.get_one(Endpoint, delivery.endpoint_id)
            return _Claim(token, delivery, event, endpoint)

    # -- the attempt ---------------------------------------------------------------

    def _attempt(self, claim: _Claim) -> Result:
        delivery, event, endpoint = claim.delivery, claim.event, claim.endpoint
        started_at = self._clock()
        body = event.body.encode("utf-8")
        number = delivery.attempt_count + 1
        headers = build_headers(
            event_id=event.id,
            event_type=event.type,
            delivery_id=delivery.id,
            attempt=number,
            timestamp=started_at,
            body=body,
            signing_keys=signing_keys(endpoint, self._box, now=started_at),
            custom=endpoint.headers,
        )
        try:
            check_endpoint_url(endpoint.url)
        except InvalidEndpointURL as exc:  # stored before today's rules, or edited in SQL
            result = SendResult(duration=0.0, error=InvalidURL(str(exc)))
        else:
            result = self._sender.post(endpoint.url, body, headers)
        outcome = classify(
            result, now=self._clock(), retry_after_cap=self._settings.retry_after_cap
        )
        retry_in = None
        if outcome.verdict is Verdict.RETRY:
            retry_in = self._schedule.next_delay(delivery.cycle_attempts + 1, outcome.retry_after)
        attempt = _attempt_row(claim, number, started_at, endpoint.url, headers, result, outcome)
        status = self._record(claim, attempt, outcome, retry_in)
        log.info(
            "delivery.attempted",
            outcome=outcome.verdict.value,
            status=status,
            status_code=attempt.response_status,
            error_kind=outcome.error_kind,
            duration_ms=round(result.duration * 1000, 1),
            retry_in_s=round(retry_in.total_seconds(), 1) if retry_in else None,
        )
        return Result(status, retry_in)

    def _record(
        self, claim: _Claim, attempt: Attempt, outcome: Outcome, retry_in: timedelta | None
    ) -> str:
        """Write the attempt and the delivery's new state; returns that state."""
        now = self._clock()
        delivery = claim.delivery
        values: dict[str, object] = {
            "attempt_count": Delivery.attempt_count + 1,
            "cycle_attempts": Delivery.cycle_attempts + 1,
            "lease_until": None,
            "lease_token": None,
            "next_trigger": Trigger.SCHEDULED,
            "last_status_code": attempt.response_status,
            "last_error_kind": outcome.error_kind,
            "last_error": outcome.reason,
            "updated_at": now,
        }
        if outcome.verdict is Verdict.SUCCEEDED:
            status = DeliveryStatus.SUCCEEDED
        elif retry_in is not None:
            status = DeliveryStatus.PENDING
            values.update(next_attempt_at=now + retry_in, rung_at=now)
        else:
            status = DeliveryStatus.FAILED
        if status != DeliveryStatus.PENDING:
            values.update(status=status, next_attempt_at=None, completed_at=now)
        try:
            with self._sessions() as session, session.begin():
                kept = session.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery.id, Delivery.lease_token == claim.token)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if kept.rowcount != 1:  # type: ignore[attr-defined]
                    # Our lease ran out and another worker took the delivery over; its
                    # record wins. The receiver may see this event twice (at-least-once).
                    log.warning("delivery.lease_lost")
                    session.rollback()
                    return "lease_lost"
                session.add(attempt)
                self._update_health(session, claim.endpoint, outcome, now)
            return status
        except SQLAlchemyError as exc:
            # The request went out but cannot be recorded. The lease expires and the
            # sweeper rings again: at-least-once, never lost.
            raise DatabaseUnavailable(f"recording an attempt of {delivery.id}: {exc}") from exc

    def _update_health(
        self, session: Session, endpoint: Endpoint, outcome: Outcome, now: datetime
    ) -> None:
        query = update(Endpoint).where(Endpoint.id == endpoint.id)
        if outcome.verdict is Verdict.SUCCEEDED:
            session.execute(
                query.values(consecutive_failures=0, failing_since=None, last_success_at=now)
            )
            return
        values: dict[str, object] = {
            "consecutive_failures": Endpoint.consecutive_failures + 1,
            "last_failure_at": now,
            "failing_since": endpoint.failing_since or now,
        }
        if outcome.verdict is Verdict.GONE:
            values.update(
                enabled=False, disabled_reason=outcome.reason, disabled_at=now, updated_at=now
            )
            log.warning("endpoint.disabled", reason=outcome.reason)
        session.execute(query.values(**values))

    # -- no attempt ----------------------------------------------------------------

    def _finish_skipped(self, claim: _Claim) -> Result:
        now = self._clock()
        with self._sessions() as session, session.begin():
            session.execute(
                update(Delivery)
                .where(Delivery.id == claim.delivery.id, Delivery.lease_token == claim.token)
                .values(
                    status=DeliveryStatus.SKIPPED,
                    lease_until=None,
                    lease_token=None,
                    next_attempt_at=None,
                    completed_at=now,
                    updated_at=now,
                    last_error=f"endpoint disabled: {claim.endpoint.disabled_reason}",
                )
            )
        log.info("delivery.skipped", reason=claim.endpoint.disabled_reason)
        return Result(DeliveryStatus.SKIPPED)

    def _postpone(self, claim: _Claim, delay: timedelta, *, reason: str) -> Result:
        """Look again later without spending an attempt."""
        now = self._clock()
        with self._sessions() as session, session.begin():
            session.execute(
                update(Delivery)
                .where(Delivery.id == claim.delivery.id, Delivery.lease_token == claim.token)
                .values(
                    lease_until=None,
                    lease_token=None,
                    next_attempt_at=now + delay,
                    rung_at=now,
                    updated_at=now,
                )
            )
        log.info("delivery.postponed", reason=reason, retry_in_s=delay.total_seconds())
        return Result("postponed", delay)


def _attempt_row(
    claim: _Claim,
    number: int,
    started_at: datetime,
    url: str,
    headers: dict[str, str],
    result: SendResult,
    outcome: Outcome,
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
        outcome=outcome.verdict.value,
    )


def _text(body: bytes) -> str:
    # PostgreSQL text cannot hold NUL; a receiver's body is shown, not replayed.
    return body.decode("utf-8", "replace").replace("\x00", "\ufffd")
