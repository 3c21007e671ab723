"""The asynchronous HTTP transport of the sending loop: the same SSRF guard as
``worker.transport``, in an httpcore *async* network backend.

``connect_tcp`` resolves the host (the resolver runs in a thread, so a slow DNS answer
never stalls the loop), keeps only addresses the guard permits and connects to one of
*those* IP addresses: there is no second lookup that DNS rebinding could answer
differently, and TLS still verifies the certificate against the original host name.

The attempt's total deadline is not enforced here but by one ``asyncio`` timeout around
the whole exchange (``worker.engine.send``): a coroutine, unlike a thread, can simply be
cancelled wherever it waits.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from worker.addresses import IPNetwork, is_permitted
from worker.errors import BlockedAddress
from worker.transport import GuardedTransport, Resolver, system_resolver


class AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks and connects to a permitted address."""

    def __init__(
        self,
        *,
        allowed_networks: Iterable[IPNetwork] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        self._allowed = tuple(allowed_networks)
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await asyncio.to_thread(self._resolver, host.strip("[]"), port)
        permitted = [a for a in addresses if is_permitted(a, self._allowed)]
        if not permitted:
            shown = ", ".join(addresses) or "nothing"
            raise BlockedAddress(f"{host} resolves to {shown}: not a permitted address")
        last: Exception | None = None
        for address in permitted:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are never a delivery target")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


ASYNC_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=1000)
"""The loop's pool is not what bounds sockets: the loop's room and each endpoint's
concurrency budget are. A bounded pool would make deliveries to a healthy endpoint
queue behind the sockets a hanging one holds."""


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connections go through an
    :class:`AsyncGuardedBackend`."""

    def __init__(
        self,
        *,
        allowed_networks: Iterable[IPNetwork] = (),
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = ASYNC_LIMITS,
    ) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=AsyncGuardedBackend(
                allowed_networks=allowed_networks, resolver=resolver
            ),
        )


def async_transport_for(
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport,
) -> httpx.AsyncBaseTransport:
    """The loop's transport for a runtime given ``transport``: itself if it can be used
    asynchronously (``httpx.MockTransport`` can), the asynchronous twin of a
    :class:`~worker.transport.GuardedTransport` (same networks, same resolver)."""
    if isinstance(transport, httpx.AsyncBaseTransport):
        return transport
    if isinstance(transport, GuardedTransport):
        return AsyncGuardedTransport(
            allowed_networks=transport.allowed_networks, resolver=transport.resolver
        )
    raise TypeError(f"{type(transport).__name__} cannot be used by the sending loop")
