"""Endpoint URL rules, checked at registration and again before every send."""

from __future__ import annotations

from urllib.parse import urlsplit

from worker.errors import InvalidEndpointURL

MAX_URL_LENGTH = 2048
"""Longest accepted endpoint URL, in characters."""


def check_endpoint_url(url: object, *, max_length: int = MAX_URL_LENGTH) -> str:
    """Return ``url`` if it is an http(s) URL with a host and no credentials."""
    if not isinstance(url, str) or not url:
        raise InvalidEndpointURL("endpoint URL must be a non-empty string")
    if len(url) > max_length:
        raise InvalidEndpointURL(f"endpoint URL is longer than {max_length} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise InvalidEndpointURL("endpoint URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidEndpointURL(f"endpoint URL {url!r} is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidEndpointURL(f"endpoint URL must use http or https, not {parts.scheme!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidEndpointURL("endpoint URL must not carry credentials (user:pass@)")
    if not parts.hostname:
        raise InvalidEndpointURL(f"endpoint URL {url!r} has no host")
    if port == 0:
        raise InvalidEndpointURL("endpoint URL port must be between 1 and 65535")
    if parts.fragment:
        raise InvalidEndpointURL("endpoint URL must not have a #fragment")
    return url
