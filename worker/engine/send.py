"""One HTTP POST on the sending loop: the asynchronous twin of ``worker.sender``.

The whole exchange (connect, send, status line and headers) must finish before the
attempt's deadline: one ``asyncio`` timeout, whatever the receiver does byte by byte.
A status that arrived in time decides even if the body did not finish (the body is cut
at the same deadline and kept as far as it came, like the synchronous sender does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import httpx

from worker.errors import SendError, SendTimeout, map_httpx_error
from worker.sender import Response, SendResult, response_headers


class AsyncSender:
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
        """Append what fits; True when the body had to be cut."""
        room = self._max_response_bytes - len(buffer)
        if len(chunk) > room:
            buffer += chunk[:room]
            return True
        buffer += chunk
        return False
