"""One HTTP POST of a delivery, under a total deadline, reading a capped response."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from worker.errors import ProtocolFailed, SendError, map_httpx_error
from worker.transport import deadline


@dataclass(frozen=True)
class Response:
    """What came back: status, headers (lower-cased names) and the first bytes of body."""

    status_code: int
    headers: dict[str, str]
    body: bytes
    truncated: bool
    # Set when the status arrived but the body did not finish before the deadline.
    body_error: SendError | None = None


@dataclass(frozen=True)
class SendResult:
    """A response, or the error that prevented one; and how long it took."""

    duration: float
    response: Response | None = None
    error: SendError | None = field(default=None)


def response_headers(response: httpx.Response, limit: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    size = 0
    for name, value in response.headers.multi_items():
        size += len(name) + len(value) + 4
        if size > limit:
            raise ProtocolFailed(f"response headers are larger than {limit} bytes")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


class Sender:
    """POSTs bodies with one shared ``httpx.Client`` (thread-safe, pooled).

    Redirects are never followed, the response body is read raw (``identity``
    encoding asked for, so a small compressed body cannot expand in memory) and only up
    to ``max_response_bytes``; the whole exchange must finish within ``timeout``.
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        timeout: float,
        connect_timeout: float,
        max_response_bytes: int,
        max_header_bytes: int,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._httpx_timeout = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        self._max_response_bytes = max_response_bytes
        self._max_header_bytes = max_header_bytes

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """Send once. Never raises for the receiver's failures: they come back as ``error``."""
        started = time.monotonic()
        response: Response | None = None
        try:
            with (
                deadline(self._timeout),
                self._client.stream(
                    "POST",
                    url,
                    content=body,
                    headers=headers,
                    timeout=self._httpx_timeout,
                    follow_redirects=False,
                ) as http_response,
            ):
                response = self._read(http_response)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = map_httpx_error(exc)
            error.__cause__ = exc
            return SendResult(duration=time.monotonic() - started, error=error)
        except SendError as exc:  # the SSRF guard, oversized headers
            return SendResult(duration=time.monotonic() - started, error=exc)
        return SendResult(duration=time.monotonic() - started, response=response)

    def _read(self, http_response: httpx.Response) -> Response:
        headers = response_headers(http_response, self._max_header_bytes)
        buffer = bytearray()
        truncated = False
        body_error: SendError | None = None
        # A response built in memory (httpx.MockTransport) arrives already read.
        chunks = (
            [http_response.content]
            if http_response.is_stream_consumed
            else http_response.iter_raw()
        )
        try:
            for chunk in chunks:
                room = self._max_response_bytes - len(buffer)
                if len(chunk) > room:
                    buffer += chunk[:room]
                    truncated = True
                    break
                buffer += chunk
        except httpx.HTTPError as exc:
            # The status line arrived in time; the body did not. The status decides.
            body_error = map_httpx_error(exc)
            truncated = True
        return Response(
            status_code=http_response.status_code,
            headers=headers,
            body=bytes(buffer),
            truncated=truncated,
            body_error=body_error,
        )
