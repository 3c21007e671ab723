"""The three Standard Webhooks headers: reading them from anything header-shaped, and
checking their syntax before any cryptography runs.

``webhook-id``
    The message id; the same across retries, so it is the receiver's dedupe key. Visible
    ASCII without ``.`` (the ``.`` separates the parts of the signed content).
``webhook-timestamp``
    Unix seconds, decimal digits only.
``webhook-signature``
    Space-separated ``<version>,<base64>`` entries, e.g. ``v1,K5oZ... v1a,hnO3...``.

Example::

    >>> read_headers({"Webhook-Id": "msg_1", "webhook-timestamp": "1", "WEBHOOK-SIGNATURE": "v1,x"})
    ('msg_1', '1', 'v1,x')
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from catentio_signing.errors import MalformedHeaderError, MissingHeaderError

__all__ = [
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "HeaderSource",
    "check_msg_id",
    "parse_signatures",
    "parse_timestamp",
    "read_headers",
]

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

#: Most signatures one ``webhook-signature`` header may list. A sender lists one per active
#: key, so a handful at most; the cap bounds the work an attacker can ask for per request.
MAX_SIGNATURES = 32
#: Longest accepted ``webhook-id``.
MAX_ID_LENGTH = 256

# Visible ASCII except "." (0x2E): the spec forbids "." in ids because it is the separator.
_MSG_ID = re.compile(rf"[\x21-\x2d\x2f-\x7e]{{1,{MAX_ID_LENGTH}}}")
# Unix seconds; 15 digits is far beyond any real clock and keeps int() cheap.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


class HeaderSource(Protocol):
    """Anything with ``get`` and ``items``: a ``dict``, or a framework's headers object."""

    def get(self, key: str, /) -> Any:
        """Return the value stored under exactly ``key``, or ``None``."""
        ...

    def items(self) -> Iterable[tuple[Any, Any]]:
        """Return all ``(name, value)`` pairs."""
        ...


def read_headers(headers: HeaderSource) -> tuple[str, str, str]:
    """Return ``(webhook-id, webhook-timestamp, webhook-signature)``, names in any case.

    Raises ``MissingHeaderError`` when one is absent or empty and ``MalformedHeaderError``
    when a value is not text or the headers object itself fails.
    """
    try:
        # Fast path: lower-case keys in a dict, or a case-insensitive headers object.
        msg_id = headers.get(ID_HEADER)
        timestamp = headers.get(TIMESTAMP_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if msg_id is None or timestamp is None or signature is None:
            lowered = _lower_case_names(headers)
            if msg_id is None:
                msg_id = lowered.get(ID_HEADER)
            if timestamp is None:
                timestamp = lowered.get(TIMESTAMP_HEADER)
            if signature is None:
                signature = lowered.get(SIGNATURE_HEADER)
    except Exception as exc:
        # The headers object is the caller's; whatever it raises is still a bad request.
        raise MalformedHeaderError("the request headers could not be read") from exc
    return (
        _header_text(ID_HEADER, msg_id),
        _header_text(TIMESTAMP_HEADER, timestamp),
        _header_text(SIGNATURE_HEADER, signature),
    )


def check_msg_id(msg_id: str) -> str:
    """Return ``msg_id`` if it is a valid ``webhook-id``, else raise ``MalformedHeaderError``."""
    if _MSG_ID.fullmatch(msg_id) is None:
        raise MalformedHeaderError(
            f"{ID_HEADER} must be 1 to {MAX_ID_LENGTH} visible ASCII characters without '.'"
        )
    return msg_id


def parse_timestamp(timestamp: str) -> int:
    """Return the unix seconds in ``webhook-timestamp``, or raise ``MalformedHeaderError``."""
    if _TIMESTAMP.fullmatch(timestamp) is None:
        raise MalformedHeaderError(f"{TIMESTAMP_HEADER} must be an integer number of seconds")
    return int(timestamp)


def parse_signatures(header: str) -> dict[str, list[str]]:
    """Split ``webhook-signature`` into ``{version: [base64, ...]}``.

    Entries without a comma are skipped (a later spec version may add other forms), but a
    header with no ``version,signature`` entry at all, or more than ``MAX_SIGNATURES``, is
    malformed.

    >>> parse_signatures("v1,abc v1a,def v1,ghi")
    {'v1': ['abc', 'ghi'], 'v1a': ['def']}
    """
    entries = header.split()
    if len(entries) > MAX_SIGNATURES:
        raise MalformedHeaderError(f"{SIGNATURE_HEADER} lists more than {MAX_SIGNATURES} entries")
    by_version: dict[str, list[str]] = {}
    for entry in entries:
        version, comma, signature = entry.partition(",")
        if comma and version and signature:
            by_version.setdefault(version, []).append(signature)
    if not by_version:
        raise MalformedHeaderError(f"{SIGNATURE_HEADER} has no 'version,signature' entry")
    return by_version


def _lower_case_names(headers: HeaderSource) -> dict[str, Any]:
    lowered: dict[str, Any] = {}
    for name, value in headers.items():
        text = _as_text(name)
        if text is not None:
            # Keep the first of repeated names, as case-insensitive header objects do.
            lowered.setdefault(text.lower(), value)
    return lowered


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        # Raw HTTP header bytes (ASGI scopes): latin-1 maps every byte, so it cannot fail.
        return bytes(value).decode("latin-1")
    return None


def _header_text(name: str, value: Any) -> str:
    if type(value) is str and value and not value.isspace():
        return value  # the common case, checked first because verify is hot
    if value is None:
        raise MissingHeaderError(f"missing {name} header")
    if isinstance(value, list | tuple) and len(value) == 1:
        # Multi-value header containers (e.g. parse_qs-style dicts) hold a one-item list.
        value = value[0]
    text = _as_text(value)
    if text is None:
        raise MalformedHeaderError(f"{name} header is not text")
    if not text.strip():
        raise MissingHeaderError(f"empty {name} header")
    return text
