"""How every kind of attempt outcome is classified, against a real HTTP server on
loopback: statuses, redirects, ``Retry-After``, the abort header, slow and huge
responses, closed ports, TLS and garbage."""

from __future__ import annotations

import socket
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from outbox import DeliveryStatus
from tests.support.harness import Harness
from worker.demo.receiver import Reply, always, sequence

SCHEDULE = timedelta(milliseconds=100)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_is_success(harness: Harness, status: int) -> None:
    """Every 2xx status ends the delivery as succeeded after one attempt."""
    harness.endpoint(behaviour=always(status))
    (delivery_id,) = harness.deliveries()
    result = harness.deliver(delivery_id)
    row = harness.delivery(delivery_id)
    assert (result.status, row.status, row.attempt_count) == ("succeeded", "succeeded", 1)
    assert row.last_status_code == status


def test_redirect_is_a_failure_and_is_never_followed(harness: Harness) -> None:
    """A 302 is recorded as a retryable ``redirect`` failure; its Location is not visited."""
    target = harness.receiver.route("/elsewhere")
    harness.endpoint(behaviour=always(302, headers={"location": target}))
    (delivery_id,) = harness.deliveries()
    result = harness.deliver(delivery_id)
    (attempt,) = harness.attempts(delivery_id)
    assert result.status == DeliveryStatus.PENDING
    assert (attempt.response_status, attempt.error_kind) == (302, "redirect")
    assert harness.receiver.received("/elsewhere") == []


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "120", timedelta(seconds=120)),
        (503, "30", timedelta(seconds=30)),
        (429, "http-date+300", timedelta(seconds=300)),
        (503, "999999", timedelta(hours=1)),  # capped by retry_after_cap
        (429, "not a date", SCHEDULE),  # unreadable: the schedule decides
        (500, "120", SCHEDULE),  # only 429 and 503 are honoured
    ],
)
def test_retry_after_is_honoured_on_429_and_503(
    harness: Harness, status: int, retry_after: str, expected: timedelta
) -> None:
    """429/503 come back no sooner than ``Retry-After`` asks (seconds or an HTTP date),
    at most ``retry_after_cap`` later; other statuses follow the schedule."""
    if retry_after.startswith("http-date"):
        retry_after = format_datetime(harness.clock.now + timedelta(seconds=300), usegmt=True)
    harness.endpoint(behaviour=always(status, headers={"retry-after": retry_after}))
    (delivery_id,) = harness.deliveries()
    result = harness.deliver(delivery_id)
    row = harness.delivery(delivery_id)
    assert result.retry_in == expected
    assert row.next_attempt_at == harness.clock.now + expected
    assert row.status == DeliveryStatus.PENDING


@pytest.mark.parametrize("status", [200, 500])
def test_abort_header_ends_the_delivery_as_failed(harness: Harness, status: int) -> None:
    """``webhook-delivery: abort-message`` stops the retries at once, whatever the status,
    and is not an exhausted delivery (no notice)."""
    headers = {"webhook-delivery": "abort-message"}
    harness.endpoint(behaviour=always(status, headers=headers))
    (delivery_id,) = harness.deliveries()
    result = harness.deliver(delivery_id)
    row = harness.delivery(delivery_id)
    assert (result.status, row.status, row.attempt_count) == ("failed", "failed", 1)
    assert row.last_error_kind == "aborted"
    assert harness.events("webhook.delivery.exhausted") == []


def test_other_statuses_retry_on_the_schedule_until_exhausted(harness: Harness) -> None:
    """4xx and 5xx (other than 410) are retried after each delay of the schedule; after
    the last one the delivery is failed with every attempt on record."""
    harness.endpoint(behaviour=sequence(500, 404, 400, 502))
    (delivery_id,) = harness.deliveries()
    results = [harness.deliver(delivery_id)]
    for _ in range(3):
        results.append(harness.due(delivery_id))
    assert [r.status for r in results] == ["pending"] * 3 + ["failed"]
    assert [r.retry_in for r in results] == [SCHEDULE] * 3 + [None]
    attempts = harness.attempts(delivery_id)
    assert [a.response_status for a in attempts] == [500, 404, 400, 502]
    assert {a.error_kind for a in attempts} == {"status"}
    assert harness.delivery(delivery_id).completed_at == harness.clock.now


def test_a_slow_status_line_times_out_at_the_deadline(make_harness: Any, sqlite_url: str) -> None:
    """A receiver that does not answer within the total deadline is a ``timeout``."""
    harness = make_harness(sqlite_url, request_timeout=0.5)
    harness.endpoint(behaviour=always(200, delay=3.0))
    (delivery_id,) = harness.deliveries()
    result = harness.deliver(delivery_id)
    (attempt,) = harness.attempts(delivery_id)
    assert result.status == DeliveryStatus.PENDING
    assert attempt.error_kind == "timeout" and attempt.response_status is None
    assert 400 <= attempt.duration_ms < 1500


def test_a_trickling_body_cannot_outlive_the_deadline(make_harness: Any, sqlite_url: str) -> None:
    """A body sent one byte every 50 ms (20 s in all) is cut at the 0.5 s deadline; the
    status that arrived in time decides, and the stored body is marked truncated."""
    harness = make_harness(sqlite_url, request_timeout=0.5)
    harness.endpoint(behaviour=always(200, body=b"x" * 400, trickle=0.05))
    (delivery_id,) = harness.deliveries()
    result = harness.deliver(delivery_id)
    (attempt,) = harness.attempts(delivery_id)
    assert result.status == DeliveryStatus.SUCCEEDED
    assert attempt.response_truncated
    assert 0 < len(attempt.response_body or "") < 400
    assert attempt.duration_ms < 1500


def test_trickling_headers_cannot_outlive_the_deadline(
    make_harness: Any, sqlite_url: str, slow_server: Any
) -> None:
    """Response headers dribbling in one byte at a time are cut at the deadline too."""
    harness = make_harness(sqlite_url, request_timeout=0.5)
    head = b"HTTP/1.1 200 OK\r\n" + b"x-slow: " + b"a" * 200 + b"\r\n\r\n"
    url = slow_server([head[i : i + 1] for i in range(len(head))], 0.02)
    harness.endpoint(url=url + "/hook")
    (delivery_id,) = harness.deliveries()
    harness.deliver(delivery_id)
    (attempt,) = harness.attempts(delivery_id)
    assert attempt.error_kind == "timeout"
    assert attempt.duration_ms < 1500


def test_a_huge_body_is_read_and_stored_only_up_to_the_cap(
    make_harness: Any, sqlite_url: str
) -> None:
    """Of a 4 MiB response body only ``max_response_bytes`` are read and stored."""
    harness = make_harness(sqlite_url, max_response_bytes=1024)
    harness.endpoint(behaviour=always(200, body=b"y" * (4 * 1024 * 1024)))
    (delivery_id,) = harness.deliveries()
    assert harness.deliver(delivery_id).status == DeliveryStatus.SUCCEEDED
    (attempt,) = harness.attempts(delivery_id)
    assert attempt.response_body == "y" * 1024
    assert attempt.response_truncated


def test_oversized_response_headers_are_a_protocol_failure(
    make_harness: Any, sqlite_url: str
) -> None:
    """Response headers over ``max_header_bytes`` are refused as a retryable ``protocol``
    failure, whatever the status."""
    harness = make_harness(sqlite_url, max_header_bytes=2048)
    headers = {f"x-filler-{i}": "z" * 100 for i in range(40)}
    harness.endpoint(behaviour=always(200, headers=headers))
    (delivery_id,) = harness.deliveries()
    result = harness.deliver(delivery_id)
    (attempt,) = harness.attempts(delivery_id)
    assert result.status == DeliveryStatus.PENDING
    assert attempt.error_kind == "protocol"


def test_bytes_that_are_not_http_are_a_protocol_failure(harness: Harness, slow_server: Any) -> None:
    """A server answering with something that is not HTTP is a ``protocol`` failure."""
    url = slow_server([b"SSH-2.0-OpenSSH_9.6\r\n\r\n"], 0.0)
    harness.endpoint(url=url + "/hook")
    (delivery_id,) = harness.deliveries()
    assert harness.deliver(delivery_id).status == DeliveryStatus.PENDING
    (attempt,) = harness.attempts(delivery_id)
    assert attempt.error_kind in ("protocol", "network")


def test_a_closed_port_is_a_retryable_connect_failure(harness: Harness) -> None:
    """Nothing listening: a ``connect`` failure, retried on the schedule."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    harness.endpoint(url=f"http://127.0.0.1:{port}/hook")
    (delivery_id,) = harness.deliveries()
    result = harness.deliver(delivery_id)
    (attempt,) = harness.attempts(delivery_id)
    assert result.status == DeliveryStatus.PENDING and result.retry_in == SCHEDULE
    assert attempt.error_kind == "connect"


def test_a_tls_handshake_failure_is_retryable(harness: Harness) -> None:
    """``https://`` to a server that speaks plain HTTP fails the handshake: ``tls``."""
    harness.receiver.route("/plain")
    harness.endpoint(url=harness.receiver.base_url.replace("http://", "https://") + "/plain")
    (delivery_id,) = harness.deliveries()
    assert harness.deliver(delivery_id).status == DeliveryStatus.PENDING
    (attempt,) = harness.attempts(delivery_id)
    assert attempt.error_kind == "tls"


def test_the_deadline_covers_the_whole_exchange_not_each_read(
    make_harness: Any, sqlite_url: str
) -> None:
    """A receiver that waits 0.3 s and then trickles its body stays within one 0.5 s
    deadline in total, though no single read is slower than the read timeout."""
    harness = make_harness(sqlite_url, request_timeout=0.5)
    harness.endpoint(behaviour=lambda _n: Reply(200, body=b"z" * 100, delay=0.3, trickle=0.02))
    (delivery_id,) = harness.deliveries()
    harness.deliver(delivery_id)
    (attempt,) = harness.attempts(delivery_id)
    assert attempt.duration_ms < 1000
    assert attempt.response_truncated
