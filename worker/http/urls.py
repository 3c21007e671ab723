"""Endpoint URL rules, checked at registration and again before every send; and, at
registration only, the SSRF rule for hosts that are literal addresses."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from worker.errors import InvalidEndpointURL
from worker.http.addresses import IPAddress, IPNetwork, is_permitted

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


LOCAL_NAMES = ("localhost", "localhost.localdomain")
"""Host names that always mean this machine (and any name under ``.localhost``)."""


def _literal(host: str) -> list[IPAddress]:
    """The addresses a host stands for without asking DNS: an IP literal (also the
    short IPv4 forms like ``127.1`` that the system resolver accepts) or localhost."""
    name = host.strip("[]").lower().rstrip(".")
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    try:
        return [ipaddress.ip_address(name.split("%", 1)[0])]
    except ValueError:
        pass
    if name and all(c in "0123456789abcdefx." for c in name) and name[0].isdigit():
        try:
            return [ipaddress.IPv4Address(socket.inet_aton(name))]
        except OSError:
            return []
    return []


def check_registrable(url: str, *, allowed_networks: Iterable[IPNetwork]) -> str:
    """``url`` if its host is not a literal address deliveries may not reach.

    A host name is resolved only when a delivery connects (the guard checks the address
    actually connected to), but ``http://localhost/…`` or ``http://10.0.0.5/…`` can be
    refused now, with the way out, instead of failing later as ``blocked_address``.
    """
    host = urlsplit(url).hostname or ""
    allowed = tuple(allowed_networks)
    for address in _literal(host):
        if not is_permitted(address, allowed):
            raise InvalidEndpointURL(
                f"endpoint URL host {host!r} is {address}, a private, loopback, link-local "
                "or reserved address that deliveries may not reach; allow its range with "
                "CATENTIO_ALLOWED_NETWORKS (e.g. 127.0.0.0/8 for local development)"
            )
    return url
