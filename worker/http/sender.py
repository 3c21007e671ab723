"""One HTTP POST of a delivery, on the sending loop, under a total deadline, reading a
capped response.

The whole exchange (connect, send, status line and headers) must finish before the
attempt's deadline: one ``asyncio`` timeout, whatever the receiver does byte by byte.
A status that arrived in time decides even if the body did not finish: the body is cut
at the same deadline and kept as far as it came. Redirects are never followed.

Two senders with one interface (``post``, ``aclose``): ``worker.http.aio.AioSender``
runs in production, behind the SSRF guard; :class:`HttpxSender` sends through an httpx
transport a caller hands the runtime (``httpx.MockTransport`` in tests), and is the
``httpx.AsyncClient`` the benchmark compares aiohttp against.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import httpx

from worker.http.errors import ProtocolFailed, SendError, SendTimeout, map_httpx_error

DEADLINE_PASSED = "the attempt's total deadline has passed"

ClientError = TypeVar("ClientError", bound=Exception)


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


class AsyncSender(Protocol):
    """What the sending loop posts through."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """Send once; never raises for the receiver's failures (they are ``error``)."""
        ...

    async def aclose(self) -> None:
        """Close the connections."""
        ...


@dataclass(frozen=True)
class Limits:
    """The bounds of one attempt's exchange."""

    timeout: float
    connect_timeout: float
    max_response_bytes: int
    max_header_bytes: int


def take(buffer: bytearray, chunk: bytes, limit: int) -> bool:
    """Append what fits under ``limit``; True when the body had to be cut."""
    room = limit - len(buffer)
    if len(chunk) > room:
        buffer += chunk[:room]
        return True
    buffer += chunk
    return False


async def read_capped(
    status_code: int,
    headers: dict[str, str],
    chunks: AsyncIterator[bytes],
    *,
    deadline: float,
    limit: int,
    client_error: type[ClientError],
    map_error: Callable[[ClientError], SendError],
) -> Response:
    """The response whose status and ``headers`` arrived in time, with its body read
    from ``chunks`` up to ``limit`` bytes and the loop-time ``deadline``. A body that
    does not finish in time, or breaks (``client_error``, the client's own error type,
    mapped by ``map_error``), is cut where it got to and says why: the status decides."""
    buffer = bytearray()
    truncated = False
    body_error: SendError | None = None
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in chunks:
                if take(buffer, chunk, limit):
                    truncated = True
                    break
    except TimeoutError:
        body_error = SendTimeout(DEADLINE_PASSED)
        truncated = True
    except client_error as exc:
        body_error = map_error(exc)
        truncated = True
    return Response(
        status_code=status_code,
        headers=headers,
        body=bytes(buffer),
        truncated=truncated,
        body_error=body_error,
    )


async def _at_once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def capped_headers(pairs: Iterable[tuple[str, str]], limit: int) -> dict[str, str]:
    """Response headers with lower-cased names (repeats joined), refused over ``limit``."""
    headers: dict[str, str] = {}
    size = 0
    for name, value in pairs:
        size += len(name) + len(value) + 4
        if size > limit:
            raise ProtocolFailed(f"response headers are larger than {limit} bytes")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


class HttpxSender:
    """POSTs bodies with one ``httpx.AsyncClient`` on the loop's thread."""

    def __init__(self, transport: httpx.AsyncBaseTransport, limits: Limits) -> None:
        self._client = httpx.AsyncClient(
            transport=transport, trust_env=False, follow_redirects=False
        )
        self._limits = limits
        self._httpx_timeout = httpx.Timeout(
            limits.timeout, connect=min(limits.connect_timeout, limits.timeout)
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """Send once. Never raises for the receiver's failures: they come back as ``error``."""
        started = time.monotonic()
        deadline = asyncio.get_running_loop().time() + self._limits.timeout
        try:
            async with asyncio.timeout_at(deadline):
                request = self._client.build_request(
                    "POST", url, content=body, headers=headers, timeout=self._httpx_timeout
                )
                http_response = await self._client.send(
                    request, stream=True, follow_redirects=False
                )
        except TimeoutError:
            return SendResult(time.monotonic() - started, error=SendTimeout(DEADLINE_PASSED))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = map_httpx_error(exc)
            error.__cause__ = exc
            return SendResult(time.monotonic() - started, error=error)
        except SendError as exc:
            return SendResult(time.monotonic() - started, error=exc)
        try:
            response = await self._read(http_response, deadline)
        except SendError as exc:  # oversized headers
            return SendResult(time.monotonic() - started, error=exc)
        finally:
            await http_response.aclose()
        return SendResult(time.monotonic() - started, response=response)

    async def _read(self, http_response: httpx.Response, deadline: float) -> Response:
        limits = self._limits
        headers = capped_headers(http_response.headers.multi_items(), limits.max_header_bytes)
        chunks = (
            _at_once(http_response.content)  # built in memory (MockTransport)
            if http_response.is_stream_consumed
            else http_response.aiter_raw()
        )
        return await read_capped(
            http_response.status_code,
            headers,
            chunks,
            deadline=deadline,
            limit=limits.max_response_bytes,
            client_error=httpx.HTTPError,
            map_error=map_httpx_error,
        )
