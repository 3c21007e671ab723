"""Why an attempt did not get a response: the ``SendError`` branch of the error tree.

These are raised inside the HTTP layer and caught by the sender, which records them as
an attempt's ``error_kind``; they never escape a delivery::

    CatentioError                       (outbox.errors)
    └── SendError                       the request got no usable response
        ├── RetryableSendError          worth another attempt later
        │   ├── SendTimeout             "timeout": connect/read/write or total deadline
        │   ├── ConnectFailed           "connect": refused, unreachable, DNS failure
        │   ├── TLSFailed               "tls": handshake or certificate failure
        │   ├── ProtocolFailed          "protocol": malformed or oversized response
        │   ├── NetworkFailed           "network": the connection broke mid-exchange
        │   └── InternalFailure         "internal": an unexpected error of ours after the
        │                               claim (bad stored data, a bug); counted as an
        │                               attempt so the delivery ends instead of looping
        └── PermanentSendError          another attempt cannot help
            ├── BlockedAddress          "blocked_address": SSRF guard refused the address
            └── InvalidURL              "invalid_url": not a URL we may send to

``map_httpx_error`` and ``map_aiohttp_error`` are the one place each that translates its
client's exceptions into these.
"""

from __future__ import annotations

import ssl

import aiohttp
import httpx

from outbox.errors import CatentioError


class SendError(CatentioError):
    """The request got no usable response."""

    kind = "error"


class RetryableSendError(SendError):
    """Another attempt later may succeed."""


class PermanentSendError(SendError):
    """Another attempt cannot succeed; the delivery ends."""


class SendTimeout(RetryableSendError):
    """Connect, read or write timed out, or the attempt's total deadline passed."""

    kind = "timeout"


class ConnectFailed(RetryableSendError):
    """The connection was refused or the host could not be resolved or reached."""

    kind = "connect"


class TLSFailed(RetryableSendError):
    """The TLS handshake failed (certificate, protocol version, …)."""

    kind = "tls"


class ProtocolFailed(RetryableSendError):
    """The response was not valid HTTP, or its headers were too large."""

    kind = "protocol"


class NetworkFailed(RetryableSendError):
    """The connection broke while sending or receiving."""

    kind = "network"


class InternalFailure(RetryableSendError):
    """Something unexpected failed on our side after the claim was won (an endpoint row
    edited by hand into a value we cannot use, a bug). Unlike a database or broker
    outage it would fail the same way forever, so it spends an attempt: it shows in the
    history and the delivery ends ``failed`` once the schedule is spent."""

    kind = "internal"


class BlockedAddress(PermanentSendError):
    """The endpoint resolves to an address the SSRF guard refuses."""

    kind = "blocked_address"


class InvalidURL(PermanentSendError):
    """The endpoint URL is not one we may send to."""

    kind = "invalid_url"


def _caused_by_ssl(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def map_httpx_error(exc: httpx.HTTPError | httpx.InvalidURL) -> SendError:
    """Translate an httpx exception into our ``SendError`` (chain it with ``from``)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.InvalidURL):
        return InvalidURL(message)
    if isinstance(exc, httpx.TimeoutException):
        return SendTimeout(message)
    if isinstance(exc, httpx.ConnectError):
        return TLSFailed(message) if _caused_by_ssl(exc) else ConnectFailed(message)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return InvalidURL(message)
    if isinstance(exc, httpx.ProtocolError):
        return ProtocolFailed(message)
    if isinstance(exc, httpx.TransportError):
        return TLSFailed(message) if _caused_by_ssl(exc) else NetworkFailed(message)
    return NetworkFailed(message)


def map_aiohttp_error(exc: BaseException) -> SendError:
    """Translate an aiohttp exception (the sending loop's client) into our ``SendError``
    (chain it with ``from``)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.InvalidURL):
        return InvalidURL(message)
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return SendTimeout(message)
    if isinstance(exc, aiohttp.ClientSSLError) or _caused_by_ssl(exc):
        return TLSFailed(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectFailed(message)
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return ProtocolFailed(message)
    return NetworkFailed(message)
