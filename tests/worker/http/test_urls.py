"""Endpoint URL rules, at registration and again before every send, and the headers an
endpoint's custom headers can never replace."""

from __future__ import annotations

import pytest

from catentio_signing import Webhook
from outbox import DeliveryStatus
from outbox.errors import ValidationError
from tests.support.harness import Harness
from worker.errors import InvalidEndpointURL
from worker.http.headers import PROTECTED_HEADERS, USER_AGENT
from worker.http.urls import MAX_URL_LENGTH, check_endpoint_url

BAD_URLS = [
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "https://user:pass@example.com/hook",
    "https://token@example.com/hook",
    "https:///hook",
    "http://",
    "example.com/hook",
    "https://example.com/" + "a" * MAX_URL_LENGTH,
    "https://exa mple.com/hook",
    "https://example.com/ho\nok",
    "https://example.com:0/hook",
    "https://example.com:99999/hook",
    "https://example.com/hook#fragment",
    "",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_urls_are_refused(url: str) -> None:
    """Only http(s) URLs with a host, no credentials, no fragment, within the length."""
    with pytest.raises(InvalidEndpointURL):
        check_endpoint_url(url)


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hook", "http://example.com:8080/a/b?c=d", "https://[2001:db8::1]/x"],
)
def test_good_urls_are_accepted(url: str) -> None:
    """Ordinary http and https URLs pass unchanged."""
    assert check_endpoint_url(url) == url


@pytest.mark.parametrize("url", BAD_URLS[:6])
def test_registration_refuses_bad_urls(harness: Harness, url: str) -> None:
    """An endpoint cannot be registered with a URL that breaks the rules."""
    with pytest.raises(InvalidEndpointURL):
        harness.add(harness.runtime, url=url)


def test_a_url_changed_behind_our_back_is_refused_at_send_time(harness: Harness) -> None:
    """A URL edited in the database after registration is checked again before the send:
    one ``invalid_url`` attempt, delivery failed, nothing sent."""
    created = harness.endpoint()
    port = harness.receiver.base_url.rsplit(":", 1)[1]
    harness.update_endpoint(created.endpoint.id, url=f"http://user:pw@127.0.0.1:{port}/hook")
    (delivery_id,) = harness.deliveries()
    assert harness.deliver(delivery_id).status == DeliveryStatus.FAILED
    (attempt,) = harness.attempts(delivery_id)
    assert attempt.error_kind == "invalid_url"
    assert harness.receiver.received() == []


@pytest.mark.parametrize(
    "name",
    [
        "webhook-signature",
        "Webhook-Id",
        "webhook-timestamp",
        "Content-Type",
        "host",
        "User-Agent",
        "x-catentio-delivery-id",
        "Content-Length",
        "Transfer-Encoding",
    ],
)
def test_custom_headers_cannot_claim_our_headers(harness: Harness, name: str) -> None:
    """Registering a custom header that would replace one of ours is refused."""
    with pytest.raises(ValidationError, match="cannot be overridden"):
        harness.add(harness.runtime, headers={name: "forged"})


def test_custom_headers_are_bounded(harness: Harness) -> None:
    """Custom request headers over the size limit are refused at registration."""
    with pytest.raises(ValidationError, match="larger than"):
        harness.add(harness.runtime, headers={f"x-h{i}": "v" * 1000 for i in range(20)})


@pytest.mark.parametrize("value", ["a\r\nx-injected: 1", "a\nb", "nul\x00"])
def test_custom_header_values_cannot_inject_lines(harness: Harness, value: str) -> None:
    """A header value with CR, LF or NUL is refused (no header injection)."""
    with pytest.raises(ValidationError):
        harness.add(harness.runtime, headers={"x-ok": value})


def test_stored_custom_headers_never_replace_ours_at_send_time(harness: Harness) -> None:
    """Even custom headers written straight into the database cannot replace the
    signature, id, timestamp, content type, host or user agent; the others are sent,
    and recorded redacted."""
    created = harness.endpoint()
    forged = {
        name: "forged"
        for name in PROTECTED_HEADERS - {"content-length", "connection", "transfer-encoding"}
    }
    harness.update_endpoint(created.endpoint.id, headers={**forged, "x-api-key": "k-123"})
    (delivery_id,) = harness.deliveries()
    assert harness.deliver(delivery_id).status == DeliveryStatus.SUCCEEDED
    (request,) = harness.receiver.received()
    assert request.verified
    Webhook(created.secret, tolerance=10**9).verify(request.body, request.headers)
    assert request.headers["host"] == harness.receiver.base_url.removeprefix("http://")
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-catentio-delivery-id"] == delivery_id
    assert request.headers["x-api-key"] == "k-123"
    assert "forged" not in request.headers.values()
    (attempt,) = harness.attempts(delivery_id)
    assert attempt.request_headers["x-api-key"] == "[redacted]"
