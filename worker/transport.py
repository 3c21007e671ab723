"""The HTTP transport deliveries go through: an SSRF guard and a total deadline.

Both live in the network backend, below httpx, because that is the only place that
sees the address actually connected to and every read and write:

* ``connect_tcp`` resolves the host itself, keeps only addresses the guard permits and
  connects to one of *those* IP addresses. There is no second lookup that DNS
  rebinding could answer differently; TLS still verifies the certificate against the
  original host name, which httpcore passes to ``start_tls``.
* Every read and write is given at most the time left before the attempt's deadline
  (set per thread with :func:`deadline`), so a receiver trickling one byte a second
  cannot hold a worker thread past it.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import typing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import httpcore
import httpx

from worker.addresses import IPNetwork, is_permitted
from worker.errors import BlockedAddress

Resolver = Callable[[str, int], list[str]]
"""Host name and port → IP address strings, in the order to try them."""

_local = threading.local()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every network operation of this thread, until exit, to ``seconds`` from now."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = time.monotonic() + seconds
    try:
        yield
    finally:
        _local.deadline = previous


def _bounded(timeout: float | None, exc: type[Exception]) -> float | None:
    """``timeout`` clamped to the time left before this thread's deadline."""
    limit: float | None = getattr(_local, "deadline", None)
    if limit is None:
        return timeout
    left = limit - time.monotonic()
    if left <= 0:
        raise exc("the attempt's total deadline has passed")
    return left if timeout is None else min(timeout, left)


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver, keeping its order and dropping duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose reads and writes respect the thread's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Resolves, checks and connects to a permitted address; enforces the deadline."""

    def __init__(
        self,
        *,
        allowed_networks: Iterable[IPNetwork] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        self._allowed = tuple(allowed_networks)
        self._resolver = resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._resolver(host.strip("[]"), port)
        permitted = [a for a in addresses if is_permitted(a, self._allowed)]
        if not permitted:
            shown = ", ".join(addresses) or "nothing"
            raise BlockedAddress(f"{host} resolves to {shown}: not a permitted address")
        last: Exception | None = None
        for address in permitted:
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    _bounded(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
                return _DeadlineStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise BlockedAddress("unix sockets are never a delivery target")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


DEFAULT_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)
"""Connection pool size shared by a worker process's delivery threads."""


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go through a :class:`GuardedBackend`."""

    def __init__(
        self,
        *,
        allowed_networks: Iterable[IPNetwork] = (),
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self.allowed_networks = tuple(allowed_networks)
        self.resolver = resolver
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(
                allowed_networks=self.allowed_networks, resolver=resolver
            ),
        )
