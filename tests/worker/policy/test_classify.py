"""Every kind of result, classified: a table per rule, no server, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from worker.http.errors import (
    BlockedAddress,
    ConnectFailed,
    InvalidURL,
    NetworkFailed,
    ProtocolFailed,
    SendError,
    SendTimeout,
    TLSFailed,
)
from worker.http.sender import Response, SendResult
from worker.policy.outcomes import Outcome, Verdict, classify, parse_retry_after

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CAP = timedelta(hours=1)


def answered(status: int, **headers: str) -> SendResult:
    """A result that got ``status`` with ``headers`` (lower-case names, as the sender
    stores them)."""
    return SendResult(duration=0.01, response=Response(status, headers, b"", False))


def failed(error: SendError) -> SendResult:
    """A result that got no response because of ``error``."""
    return SendResult(duration=0.01, error=error)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("120", timedelta(seconds=120)),
        ("  7 ", timedelta(seconds=7)),
        ("0", timedelta(0)),
        ("99999999999999", timedelta(seconds=999_999_999)),  # read as 9 digits at most
        (format_datetime(NOW + timedelta(minutes=5), usegmt=True), timedelta(minutes=5)),
        (format_datetime(NOW - timedelta(minutes=5), usegmt=True), timedelta(0)),
        ("Mon, 23 Nov 2026 12:00:30", timedelta(seconds=30)),  # no zone: taken as UTC
        ("soon", None),
        ("-5", None),
        ("", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(
    value: str | None, expected: timedelta | None
) -> None:
    """``Retry-After`` in either form becomes a delay that is never negative; anything
    else is ignored (None)."""
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("result", "verdict", "error_kind"),
    [
        (answered(200), Verdict.SUCCEEDED, None),
        (answered(204), Verdict.SUCCEEDED, None),
        (answered(299), Verdict.SUCCEEDED, None),
        (answered(200, **{"webhook-delivery": "abort-message"}), Verdict.FAILED, "aborted"),
        (answered(500, **{"webhook-delivery": " Abort-Message "}), Verdict.FAILED, "aborted"),
        (answered(410), Verdict.GONE, "gone"),
        (answered(301), Verdict.RETRY, "redirect"),
        (answered(308), Verdict.RETRY, "redirect"),
        (answered(400), Verdict.RETRY, "status"),
        (answered(404), Verdict.RETRY, "status"),
        (answered(500), Verdict.RETRY, "status"),
        (answered(199), Verdict.RETRY, "status"),
        (failed(SendTimeout("timed out")), Verdict.RETRY, "timeout"),
        (failed(ConnectFailed("refused")), Verdict.RETRY, "connect"),
        (failed(TLSFailed("bad certificate")), Verdict.RETRY, "tls"),
        (failed(ProtocolFailed("not HTTP")), Verdict.RETRY, "protocol"),
        (failed(NetworkFailed("reset")), Verdict.RETRY, "network"),
        (failed(BlockedAddress("10.0.0.1")), Verdict.FAILED, "blocked_address"),
        (failed(InvalidURL("ftp://x")), Verdict.FAILED, "invalid_url"),
    ],
)
def test_each_result_has_one_verdict(
    result: SendResult, verdict: Verdict, error_kind: str | None
) -> None:
    """2xx succeeds; the abort header fails for good, whatever the status; 410 is gone;
    every other status and every network error is retried; a blocked address or an
    invalid URL fails at once (another attempt cannot help)."""
    outcome = classify(result, now=NOW, retry_after_cap=CAP)
    assert (outcome.verdict, outcome.error_kind) == (verdict, error_kind)
    assert outcome.retry_after is None


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "30", timedelta(seconds=30)),
        (503, "30", timedelta(seconds=30)),
        (429, "7200", CAP),  # capped
        (429, format_datetime(NOW + timedelta(minutes=2), usegmt=True), timedelta(minutes=2)),
        (429, "whenever", None),
        (500, "30", None),  # only 429 and 503 are asked to wait
        (502, "30", None),
    ],
)
def test_retry_after_counts_on_429_and_503_only(
    status: int, retry_after: str, expected: timedelta | None
) -> None:
    """A 429 or 503 that says when to come back is retried no sooner (up to the cap);
    other statuses' Retry-After is ignored."""
    outcome = classify(
        answered(status, **{"retry-after": retry_after}), now=NOW, retry_after_cap=CAP
    )
    assert outcome == Outcome(
        Verdict.RETRY, error_kind="status", reason=f"HTTP {status}", retry_after=expected
    )
