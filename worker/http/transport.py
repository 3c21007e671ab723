"""Where deliveries may connect: the SSRF guard's configuration and the resolver.

The check itself is on the address actually connected to, in the sending loop's
client (``worker.http.aio``): the host is resolved once, only the permitted addresses
are handed to the connector, and an IP literal is checked before any connection. There
is no second lookup that DNS rebinding could answer differently; TLS still verifies the
certificate against the original host name.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.http.addresses import IPNetwork
from worker.http.errors import ConnectFailed

Resolver = Callable[[str, int], list[str]]
"""Host name and port → IP address strings, in the order to try them."""


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver, keeping its order and dropping duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConnectFailed(f"cannot resolve {host!r}: {exc}") from exc
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


@dataclass(frozen=True)
class Guard:
    """The SSRF guard of a process: the ranges opened on purpose (nothing but globally
    routable addresses otherwise) and the resolver host names go through."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver)


BLOCKED_HINT = (
    "not a permitted address (private, loopback, link-local or reserved; "
    "CATENTIO_ALLOWED_NETWORKS can allow a range)"
)
"""How a refusal by the guard ends its message."""
