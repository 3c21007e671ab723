"""Outcomes: what an attempt's result means for its delivery.

Every outcome is classified here and only here:

=========================================  ==========================================
result                                     verdict
=========================================  ==========================================
2xx                                        succeeded
response header ``webhook-delivery:        failed (no more retries)
abort-message``
410 Gone                                   gone: the endpoint is disabled
429 / 503 with ``Retry-After``             retry, not before the time asked (capped)
3xx (never followed), other statuses       retry per the schedule
timeout, connect, TLS, protocol, network   retry per the schedule
blocked address, invalid URL               failed (another attempt cannot help)
=========================================  ==========================================

When to try again is ``worker.policy.schedule``'s decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

from worker.http.errors import PermanentSendError
from worker.http.sender import SendResult


class Verdict(StrEnum):
    """What happens to the delivery after an attempt."""

    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"
    GONE = "gone"


ABORTED = "aborted"
"""The error kind of an outcome the receiver ended on purpose (``webhook-delivery:
abort-message``): a failure of that message, not of the endpoint."""

EXHAUSTED = "exhausted"
"""``Attempt.outcome`` of a retryable failure with no delay left in the schedule: the
delivery ends ``failed``."""


@dataclass(frozen=True)
class Outcome:
    """An attempt's classified result."""

    verdict: Verdict
    error_kind: str | None = None
    reason: str | None = None
    retry_after: timedelta | None = None


def parse_retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """``Retry-After`` as seconds or an HTTP date → a non-negative delay, or ``None``."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return timedelta(seconds=int(text[:9]))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(moment - now, timedelta(0))


def classify(result: SendResult, *, now: datetime, retry_after_cap: timedelta) -> Outcome:
    """Decide what an attempt's result means for its delivery."""
    if result.error is not None:
        verdict = Verdict.FAILED if isinstance(result.error, PermanentSendError) else Verdict.RETRY
        return Outcome(verdict, error_kind=result.error.kind, reason=str(result.error))
    response = result.response
    assert response is not None
    status = response.status_code
    if response.headers.get("webhook-delivery", "").strip().lower() == "abort-message":
        return Outcome(
            Verdict.FAILED, error_kind=ABORTED, reason=f"{status}: receiver aborted the message"
        )
    if 200 <= status < 300:
        return Outcome(Verdict.SUCCEEDED)
    if status == 410:
        return Outcome(Verdict.GONE, error_kind="gone", reason="410 Gone: endpoint disabled")
    retry_after = None
    if status in (429, 503):
        asked = parse_retry_after(response.headers.get("retry-after"), now=now)
        if asked is not None:
            retry_after = min(asked, retry_after_cap)
    kind = "redirect" if 300 <= status < 400 else "status"
    return Outcome(Verdict.RETRY, error_kind=kind, reason=f"HTTP {status}", retry_after=retry_after)
