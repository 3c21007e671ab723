"""One HTTP POST on the sending loop: the asynchronous twin of ``worker.sender``.

The whole exchange (connect, send, status line and headers) must finish before the
attempt's deadline: one ``asyncio`` timeout, whatever the receiver does byte by byte.
A status that arrived in time decides even if the body did not finish (the body is cut
at the same deadline and kept as far as it came, like the synchronous sender does).

:class:`AioSender` is the one that runs in production (aiohttp behind the SSRF guard of
``worker.engine.transport``); :class:`HttpxSender` sends through an httpx transport a
caller hands the runtime (``httpx.MockTransport`` in tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
import httpx
import yarl

from worker.addresses import IPNetwork
from worker.engine.transport import GuardedResolver, check_literal
from worker.errors import (
    ProtocolFailed,
    SendError,
    SendTimeout,
    map_aiohttp_error,
    map_httpx_error,
)
from worker.sender import Response, SendResult, response_headers
from worker.settings import Settings
from worker.transport import GuardedTransport, Resolver, system_resolver


class HttpxSender:
    """POSTs bodies with one shared ``httpx.AsyncClient`` on the loop's thread."""

    def __init__(
        self,
        client: httpx.AsyncClient,
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

    async def aclose(self) -> None:
        await self._client.aclose()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """Send once. Never raises for the receiver's failures: they come back as ``error``."""
        started = time.monotonic()
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            async with asyncio.timeout_at(deadline):
                request = self._client.build_request(
                    "POST", url, content=body, headers=headers, timeout=self._httpx_timeout
                )
                http_response = await self._client.send(
                    request, stream=True, follow_redirects=False
                )
        except TimeoutError:
            error: SendError = SendTimeout("the attempt's total deadline has passed")
            return SendResult(duration=time.monotonic() - started, error=error)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = map_httpx_error(exc)
            error.__cause__ = exc
            return SendResult(duration=time.monotonic() - started, error=error)
        except SendError as exc:  # the SSRF guard
            return SendResult(duration=time.monotonic() - started, error=exc)
        try:
            response = await self._read(http_response, deadline)
        except SendError as exc:  # oversized headers
            return SendResult(duration=time.monotonic() - started, error=exc)
        finally:
            await http_response.aclose()
        return SendResult(duration=time.monotonic() - started, response=response)

    async def _read(self, http_response: httpx.Response, deadline: float) -> Response:
        headers = response_headers(http_response, self._max_header_bytes)
        buffer = bytearray()
        truncated = False
        body_error: SendError | None = None
        try:
            async with asyncio.timeout_at(deadline):
                if http_response.is_stream_consumed:  # built in memory (MockTransport)
                    truncated = self._take(buffer, http_response.content)
                else:
                    async for chunk in http_response.aiter_raw():
                        if self._take(buffer, chunk):
                            truncated = True
                            break
        except TimeoutError:
            # The status line arrived in time; the body did not. The status decides.
            body_error = SendTimeout("the attempt's total deadline has passed")
            truncated = True
        except httpx.HTTPError as exc:
            body_error = map_httpx_error(exc)
            truncated = True
        return Response(
            status_code=http_response.status_code,
            headers=headers,
            body=bytes(buffer),
            truncated=truncated,
            body_error=body_error,
        )

    def _take(self, buffer: bytearray, chunk: bytes) -> bool:
        return _take(buffer, chunk, self._max_response_bytes)


def _take(buffer: bytearray, chunk: bytes, limit: int) -> bool:
    """Append what fits under ``limit``; True when the body had to be cut."""
    room = limit - len(buffer)
    if len(chunk) > room:
        buffer += chunk[:room]
        return True
    buffer += chunk
    return False


def raw_response_headers(pairs: Iterable[tuple[bytes, bytes]], limit: int) -> dict[str, str]:
    """Response headers with lower-cased names (repeats joined), refused over ``limit``."""
    headers: dict[str, str] = {}
    size = 0
    for raw_name, raw_value in pairs:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        size += len(name) + len(value) + 4
        if size > limit:
            raise ProtocolFailed(f"response headers are larger than {limit} bytes")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


class AioSender:
    """POSTs bodies with one aiohttp session (created on the loop, pooled, unbounded:
    the loop's room and each endpoint's budget bound the sockets)."""

    def __init__(
        self,
        *,
        allowed_networks: Iterable[IPNetwork],
        resolver: Resolver,
        timeout: float,
        connect_timeout: float,
        max_response_bytes: int,
        max_header_bytes: int,
    ) -> None:
        self._allowed = tuple(allowed_networks)
        self._resolver = resolver
        self._timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(
            total=None, connect=min(connect_timeout, timeout), sock_connect=connect_timeout
        )
        self._max_response_bytes = max_response_bytes
        self._max_header_bytes = max_header_bytes
        self._ssl = httpx.create_ssl_context(trust_env=False)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=0,
            limit_per_host=0,
            use_dns_cache=False,
            resolver=GuardedResolver(allowed_networks=self._allowed, resolver=self._resolver),
            ssl=self._ssl,
            keepalive_timeout=5.0,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            max_line_size=max(self._max_header_bytes, 8190),
            max_field_size=max(self._max_header_bytes, 8190),
        )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """Send once. Never raises for the receiver's failures: they come back as ``error``."""
        started = time.monotonic()
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            target = yarl.URL(url)
            check_literal(target.host, self._allowed)
            session = self._session or self._open()
            async with asyncio.timeout_at(deadline):
                response = await session.post(
                    target,
                    data=body,
                    headers=dict(headers),
                    allow_redirects=False,
                    timeout=self._client_timeout,
                )
        except TimeoutError:
            error: SendError = SendTimeout("the attempt's total deadline has passed")
            return SendResult(duration=time.monotonic() - started, error=error)
        except SendError as exc:  # the SSRF guard
            return SendResult(duration=time.monotonic() - started, error=exc)
        except (aiohttp.ClientError, ValueError) as exc:
            error = map_aiohttp_error(exc)
            error.__cause__ = exc
            return SendResult(duration=time.monotonic() - started, error=error)
        try:
            return SendResult(
                duration=time.monotonic() - started, response=await self._read(response, deadline)
            )
        except SendError as exc:  # oversized headers
            return SendResult(duration=time.monotonic() - started, error=exc)
        finally:
            response.release()

    async def _read(self, response: aiohttp.ClientResponse, deadline: float) -> Response:
        headers = raw_response_headers(response.raw_headers, self._max_header_bytes)
        buffer = bytearray()
        truncated = False
        body_error: SendError | None = None
        try:
            async with asyncio.timeout_at(deadline):
                while chunk := await response.content.read(65536):
                    if _take(buffer, chunk, self._max_response_bytes):
                        truncated = True
                        break
        except TimeoutError:
            body_error = SendTimeout("the attempt's total deadline has passed")
            truncated = True
        except aiohttp.ClientError as exc:
            body_error = map_aiohttp_error(exc)
            truncated = True
        return Response(
            status_code=response.status,
            headers=headers,
            body=bytes(buffer),
            truncated=truncated,
            body_error=body_error,
        )


AsyncSender = AioSender | HttpxSender
"""Either sender: ``post`` and ``aclose``, on the loop."""


def sender_for(
    settings: Settings, transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None
) -> AsyncSender:
    """The loop's sender: aiohttp behind the guard (the networks and resolver of a
    given :class:`~worker.transport.GuardedTransport`, else the settings'), or an httpx
    client on a transport that can be used asynchronously (``httpx.MockTransport``)."""
    limits: dict[str, Any] = {
        "timeout": settings.request_timeout,
        "connect_timeout": settings.connect_timeout,
        "max_response_bytes": settings.max_response_bytes,
        "max_header_bytes": settings.max_header_bytes,
    }
    if transport is None or isinstance(transport, GuardedTransport):
        guard = transport
        return AioSender(
            allowed_networks=guard.allowed_networks if guard else settings.allowed_networks,
            resolver=guard.resolver if guard else system_resolver,
            **limits,
        )
    if isinstance(transport, httpx.AsyncBaseTransport):
        client = httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False)
        return HttpxSender(client, **limits)
    raise TypeError(f"{type(transport).__name__} cannot be used by the sending loop")
