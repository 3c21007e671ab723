"""The headers of a delivery request: Standard Webhooks, ours, and the endpoint's own."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version

from catentio_signing import sign_headers
from outbox.errors import ValidationError

try:
    VERSION = version("catentio-webhooks")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0+unknown"

USER_AGENT = f"Catentio-Webhooks/{VERSION}"

PROTECTED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "accept-encoding",
        "connection",
        "host",
        "user-agent",
        "x-catentio-event-type",
        "x-catentio-delivery-id",
        "x-catentio-attempt",
    }
)
"""Headers an endpoint's custom headers may never set or replace."""

REDACTED = "[redacted]"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"[\t\x20-\x7e]*")


def check_custom_headers(headers: Mapping[str, str], *, max_bytes: int) -> dict[str, str]:
    """Validate an endpoint's custom headers; returns them with lower-cased names."""
    checked: dict[str, str] = {}
    size = 0
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValidationError(f"header name {name!r} is not a valid HTTP token")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ValidationError(f"header {name!r} has a value with CR, LF or NUL")
        if not _VALUE.fullmatch(value):
            raise ValidationError(
                f"header {name!r} has a value with a character outside printable ASCII "
                "(HTTP header values are sent as ASCII; percent- or base64-encode it)"
            )
        lowered = name.lower()
        if lowered in PROTECTED_HEADERS:
            raise ValidationError(f"header {name!r} is set by Catentio and cannot be overridden")
        size += len(name) + len(value) + 4
        checked[lowered] = value
    if size > max_bytes:
        raise ValidationError(f"custom headers are larger than {max_bytes} bytes")
    return checked


def build_headers(
    *,
    event_id: str,
    event_type: str,
    delivery_id: str,
    attempt: int,
    timestamp: datetime,
    body: bytes,
    signing_keys: Sequence[str],
    custom: Mapping[str, str],
) -> dict[str, str]:
    """Every header of one attempt. Ours are set last, so nothing custom can replace them."""
    headers = {k.lower(): v for k, v in custom.items() if k.lower() not in PROTECTED_HEADERS}
    headers.update(
        {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "accept-encoding": "identity",
            "x-catentio-event-type": event_type,
            "x-catentio-delivery-id": delivery_id,
            "x-catentio-attempt": str(attempt),
        }
    )
    headers.update(
        sign_headers(list(signing_keys), msg_id=event_id, timestamp=timestamp, payload=body)
    )
    return headers


def headers_for_record(headers: Mapping[str, str], custom: Mapping[str, str]) -> dict[str, str]:
    """The request headers as stored on an attempt: custom values are redacted, since an
    endpoint's own headers often carry credentials (``authorization``, API keys)."""
    custom_names = {k.lower() for k in custom}
    return {k: (REDACTED if k in custom_names else v) for k, v in headers.items()}
