"""The production sender (aiohttp on an event loop) on its own: the SSRF guard on the
address actually connected to, no redirects followed, and one total deadline that a
receiver trickling bytes cannot stretch. Real TCP servers on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from tests.support.rawserver import RawServer
from worker.http.aio import AioSender
from worker.http.sender import Limits, SendResult
from worker.http.transport import Guard

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
LIMITS = Limits(timeout=1.0, connect_timeout=1.0, max_response_bytes=1024, max_header_bytes=4096)
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def post(guard: Guard, url: str, limits: Limits = LIMITS) -> SendResult:
    async def run() -> SendResult:
        sender = AioSender(guard, limits)
        try:
            return await sender.post(url, b"{}", {"content-type": "application/json"})
        finally:
            await sender.aclose()

    return asyncio.run(run())


@pytest.fixture
def raw() -> Iterator[Callable[[Sequence[bytes], float], RawServer]]:
    servers: list[RawServer] = []

    def build(chunks: Sequence[bytes], pause: float) -> RawServer:
        server = RawServer(chunks, pause)
        servers.append(server)
        server.start()
        return server

    yield build
    for server in servers:
        server.stop()


def port_of(server: RawServer) -> int:
    return int(server._socket.getsockname()[1])


class FakeDNS:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, host: str, port: int) -> list[str]:
        with self._lock:
            self.calls.append(host)
        return list(self.answers[host])


def test_a_name_resolving_to_a_forbidden_address_is_refused_before_connecting(
    raw: Any,
) -> None:
    """``hooks.test`` → 127.0.0.1 with nothing allowed: ``blocked_address``, and the
    server listening there never sees a connection."""
    server = raw([OK], 0.0)
    dns = FakeDNS({"hooks.test": ["127.0.0.1"]})
    result = post(Guard((), dns), f"http://hooks.test:{port_of(server)}/hook")
    assert result.error is not None and result.error.kind == "blocked_address"
    assert "CATENTIO_ALLOWED_NETWORKS" in str(result.error)
    assert dns.calls == ["hooks.test"] and server.connections == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "127.1", "0x7f.0.0.1"])
def test_an_ip_literal_outside_the_allow_list_is_refused(raw: Any, host: str) -> None:
    """A literal is checked itself (no resolver is asked), in every spelling."""
    server = raw([OK], 0.0)
    dns = FakeDNS({})
    result = post(Guard((), dns), f"http://{host}:{port_of(server)}/hook")
    assert result.error is not None and result.error.kind == "blocked_address"
    assert dns.calls == [] and server.connections == 0


def test_only_the_permitted_answer_is_connected_to(raw: Any) -> None:
    """A name resolving to a private and a loopback address (loopback allowed) connects
    to the permitted one, resolved once."""
    server = raw([OK], 0.0)
    dns = FakeDNS({"both.test": ["10.1.2.3", "127.0.0.1"]})
    result = post(Guard(LOOPBACK, dns), f"http://both.test:{port_of(server)}/hook")
    assert result.response is not None and result.response.status_code == 200
    assert dns.calls == ["both.test"] and server.connections == 1


def test_a_redirect_is_a_response_not_a_second_request(raw: Any) -> None:
    """307 to another server: recorded as the 307, the other server gets nothing."""
    target = raw([OK], 0.0)
    location = f"http://127.0.0.1:{port_of(target)}/elsewhere"
    answer = f"HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n"
    bouncer = raw([answer.encode()], 0.0)
    result = post(Guard(LOOPBACK), f"http://127.0.0.1:{port_of(bouncer)}/hook")
    assert result.response is not None and result.response.status_code == 307
    assert result.response.headers["location"] == location
    assert target.connections == 0


def test_a_receiver_trickling_its_headers_is_cut_at_the_deadline(raw: Any) -> None:
    """One byte of the status line every 50 ms: the attempt ends at its 1 s deadline
    with a timeout, though every single read was quick."""
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    server = raw([head[i : i + 1] for i in range(len(head))], 0.05)
    started = time.monotonic()
    result = post(Guard(LOOPBACK), f"http://127.0.0.1:{port_of(server)}/hook")
    elapsed = time.monotonic() - started
    assert result.error is not None and result.error.kind == "timeout"
    assert 0.9 <= elapsed < 1.6


def test_a_body_trickling_past_the_deadline_keeps_the_status(raw: Any) -> None:
    """The status arrived in time, the body did not: the status decides, the body is
    kept as far as it came and marked cut."""
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"
    server = raw([head] + [b"x"] * 100, 0.05)
    result = post(Guard(LOOPBACK), f"http://127.0.0.1:{port_of(server)}/hook")
    assert result.response is not None and result.response.status_code == 200
    assert result.response.truncated and result.response.body_error is not None
    assert 0 < len(result.response.body) < 100
    assert result.duration < 1.6


def test_a_large_body_is_capped(raw: Any) -> None:
    body = b"y" * 5000
    server = raw([b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n" + body], 0.0)
    result = post(Guard(LOOPBACK), f"http://127.0.0.1:{port_of(server)}/hook")
    assert result.response is not None
    assert result.response.truncated and len(result.response.body) == LIMITS.max_response_bytes
