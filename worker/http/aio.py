"""The production sender: aiohttp on the sending loop, behind the SSRF guard.

aiohttp connects only to the addresses its resolver returns (or to an IP literal
itself), so the guard sits in both places: :class:`GuardedResolver` resolves the host
with our resolver (in a thread, so a slow DNS answer never stalls the loop) and returns
only the permitted addresses, and :func:`check_literal` refuses an IP literal that is
not permitted before any connection. There is no second lookup that DNS rebinding
could answer differently, and TLS still verifies the certificate against the original
host name. Redirects are never followed; the whole exchange is one ``asyncio`` deadline.

Why aiohttp and not ``httpx.AsyncClient``: measured side by side on the same receiver
(``tests/bench/test_senders.py``), aiohttp costs a fraction of httpx's CPU per request;
the figures are in the README's performance section.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from worker.http.addresses import IPNetwork, is_permitted
from worker.http.errors import BlockedAddress, SendError, SendTimeout, map_aiohttp_error
from worker.http.sender import (
    DEADLINE_PASSED,
    Limits,
    Response,
    SendResult,
    capped_headers,
    read_capped,
)
from worker.http.transport import BLOCKED_HINT, Guard, Resolver

READ_CHUNK = 65536
KEEPALIVE = 5.0
"""Seconds an idle connection to a receiver is kept for the next delivery."""


class GuardedResolver(AbstractResolver):
    """Resolves with ``resolver`` and keeps only the addresses the guard permits."""

    def __init__(self, *, allowed_networks: tuple[IPNetwork, ...], resolver: Resolver) -> None:
        self._allowed = allowed_networks
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await asyncio.to_thread(self._resolver, host.strip("[]"), port)
        permitted = [a for a in addresses if is_permitted(a, self._allowed)]
        if not permitted:
            shown = ", ".join(addresses) or "nothing"
            raise BlockedAddress(f"{host} resolves to {shown}: {BLOCKED_HINT}")
        return [_result(host, address, port) for address in permitted]

    async def close(self) -> None:
        """Nothing to release: lookups run in the loop's default executor."""


def _result(host: str, address: str, port: int) -> ResolveResult:
    return {
        "hostname": host,
        "host": address,
        "port": port,
        "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
        "proto": 0,
        "flags": socket.AI_NUMERICHOST,
    }


def check_literal(host: str | None, allowed: tuple[IPNetwork, ...]) -> None:
    """Refuse a host that is an IP literal the guard does not permit (aiohttp connects
    to a literal without asking the resolver)."""
    if host is None:
        return
    try:
        address: Any = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if _legacy_ipv4(host):
            # 127.1, 0x7f.0.0.1, 017700000001: the C resolver reads them as addresses.
            raise BlockedAddress(f"{host} is not a canonical IP address: {BLOCKED_HINT}") from None
        return  # a name: the resolver checks what it resolves to
    if not is_permitted(address, allowed):
        raise BlockedAddress(f"{host}: {BLOCKED_HINT}")


def _legacy_ipv4(host: str) -> bool:
    """Whether ``host`` is an IPv4 address in one of the old short, hex or octal forms."""
    if not host or not all(c in "0123456789abcdefxABCDEFX." for c in host):
        return False
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


class AioSender:
    """POSTs bodies with one aiohttp session (created on the loop, pooled, unbounded:
    the loop's room and each endpoint's budget bound the sockets)."""

    def __init__(self, guard: Guard, limits: Limits) -> None:
        self._guard = guard
        self._limits = limits
        connect = min(limits.connect_timeout, limits.timeout)
        self._client_timeout = aiohttp.ClientTimeout(total=None, connect=connect)
        self._ssl = httpx.create_ssl_context(trust_env=False)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=0,
            limit_per_host=0,
            use_dns_cache=False,
            resolver=GuardedResolver(
                allowed_networks=self._guard.allowed_networks, resolver=self._guard.resolver
            ),
            ssl=self._ssl,
            keepalive_timeout=KEEPALIVE,
        )
        size = max(self._limits.max_header_bytes, 8190)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("accept",),
            max_line_size=size,
            max_field_size=size,
        )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """Send once. Never raises for the receiver's failures: they come back as ``error``."""
        started = time.monotonic()
        deadline = asyncio.get_running_loop().time() + self._limits.timeout
        try:
            target = yarl.URL(url)
            if target.scheme not in ("http", "https"):
                raise aiohttp.InvalidURL(url)
            check_literal(target.raw_host, self._guard.allowed_networks)
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
            return SendResult(time.monotonic() - started, error=SendTimeout(DEADLINE_PASSED))
        except SendError as exc:  # the SSRF guard, a failed lookup
            return SendResult(time.monotonic() - started, error=exc)
        except (aiohttp.ClientError, ValueError) as exc:
            guard = _guard_refusal(exc)
            if guard is not None:
                return SendResult(time.monotonic() - started, error=guard)
            error = map_aiohttp_error(exc)
            error.__cause__ = exc
            return SendResult(time.monotonic() - started, error=error)
        try:
            read = await self._read(response, deadline)
        except SendError as exc:  # oversized headers
            return SendResult(time.monotonic() - started, error=exc)
        finally:
            response.release()
        return SendResult(time.monotonic() - started, response=read)

    async def _read(self, response: aiohttp.ClientResponse, deadline: float) -> Response:
        headers = capped_headers(
            ((k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers),
            self._limits.max_header_bytes,
        )
        return await read_capped(
            response.status,
            headers,
            response.content.iter_chunked(READ_CHUNK),
            deadline=deadline,
            limit=self._limits.max_response_bytes,
            client_error=aiohttp.ClientError,
            map_error=map_aiohttp_error,
        )


def _guard_refusal(exc: BaseException) -> SendError | None:
    """The guard's (or the resolver's) own error, if aiohttp wrapped it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SendError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
