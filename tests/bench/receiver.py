"""The benchmark's receiver: a small HTTP/1.1 server on loopback, in a process of its own.

It must never be the bottleneck, so it verifies nothing and parses only what it needs
(the request line, ``content-length``, ``webhook-id``) on a bare ``asyncio.Protocol``;
its own CPU per request is reported beside every figure (``/_stats``). It timestamps each
request with the wall clock (``time.time()``) the moment the whole body has arrived: the
producer takes its commit time from the same clock, on the same machine.

Routes, by the first path segment::

    /ok/<name>       200 at once
    /hang/<name>     reads the request and never answers (until /_release)
    /fail<k>/<name>  500 to the first k requests carrying a webhook-id, then 200

Control (GET): ``/_stats`` (requests per path, this process's CPU seconds),
``/_arrivals`` (per path, ``[time, webhook-id]`` in arrival order: the order a FIFO check
reads), ``/_release/hang/<name>`` (close the hung connections of that route, and close
later requests there at once, so workers can stop), ``/_reset`` (forget the records).

Run it as ``python -m tests.bench.receiver PORT_FILE``; it writes its port there.
:class:`ReceiverProcess` does that and talks to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from tests.bench import procstat

OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
FAIL = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nfail"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
BAD = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


class State:
    """What the receiver has seen."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[tuple[float, str]]] = defaultdict(list)
        self.failures_left: dict[tuple[str, str], int] = {}
        self.hung: dict[asyncio.Transport, str] = {}
        self.released: set[str] = set()  # path prefixes whose hanging has ended

    def control(self, path: str) -> bytes:
        if path.startswith("/_release/"):
            prefix = path[len("/_release") :]
            self.released.add(prefix)
            for transport, hung_path in list(self.hung.items()):
                if hung_path.startswith(prefix):
                    transport.close()
                    del self.hung[transport]
            payload: Any = {"released": prefix}
        elif path == "/_stats":
            sample = procstat.read(os.getpid())
            payload = {
                "requests": {p: len(a) for p, a in self.arrivals.items()},
                "cpu": sample.cpu if sample else None,
                "hung": len(self.hung),
            }
        elif path == "/_arrivals":
            payload = self.arrivals
        elif path == "/_reset":
            self.arrivals.clear()
            self.failures_left.clear()
            self.released.clear()
            payload = {"reset": True}
        else:
            return NOT_FOUND
        body = json.dumps(payload).encode()
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )


class Connection(asyncio.Protocol):
    """One keep-alive connection: requests parsed as they complete, answered in order."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.hanging = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.state.hung.pop(self.transport, None)

    def data_received(self, data: bytes) -> None:
        if self.hanging:
            return
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            length, webhook_id = 0, ""
            lines = head.split(b"\r\n")
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                lowered = name.strip().lower()
                if lowered == b"content-length":
                    length = int(value)
                elif lowered == b"webhook-id":
                    webhook_id = value.strip().decode()
                elif lowered == b"transfer-encoding":
                    self._send(BAD)
                    return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            parts = lines[0].split(b" ")
            if len(parts) != 3:
                self._send(BAD)
                return
            self._handle(parts[1].decode(), webhook_id)
            if self.hanging:
                return

    def _handle(self, path: str, webhook_id: str) -> None:
        if path.startswith("/_"):
            self._send(self.state.control(path))
            return
        received = time.time()
        self.state.arrivals[path].append((received, webhook_id))
        kind = path.split("/", 2)[1]
        if kind == "ok":
            self._send(OK)
        elif kind == "hang":
            assert self.transport is not None
            if any(path.startswith(prefix) for prefix in self.state.released):
                self.transport.close()
                return
            self.hanging = True
            self.state.hung[self.transport] = path
        elif kind.startswith("fail") and kind[4:].isdigit():
            key = (path, webhook_id)
            left = self.state.failures_left.setdefault(key, int(kind[4:]))
            if left > 0:
                self.state.failures_left[key] = left - 1
                self._send(FAIL)
            else:
                self._send(OK)
        else:
            self._send(NOT_FOUND)

    def _send(self, response: bytes) -> None:
        assert self.transport is not None
        self.transport.write(response)
        if response is BAD:
            self.transport.close()


def out_of_order(arrivals: list[tuple[float, str]], published: list[str]) -> int:
    """How many events arrived (first time) after an event published later than them:
    0 means FIFO. ``published``: the event ids in the order they were committed."""
    rank = {event_id: index for index, event_id in enumerate(published)}
    seen: set[str] = set()
    latest = -1
    late = 0
    for _, webhook_id in arrivals:
        if webhook_id in seen or webhook_id not in rank:
            continue
        seen.add(webhook_id)
        if rank[webhook_id] < latest:
            late += 1
        latest = max(latest, rank[webhook_id])
    return late


async def serve(port_file: Path) -> None:
    """Listen on 127.0.0.1 (a free port, written to ``port_file``) until SIGTERM."""
    loop = asyncio.get_running_loop()
    state = State()
    server = await loop.create_server(lambda: Connection(state), "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    partial = port_file.with_suffix(".partial")
    partial.write_text(str(port))
    partial.replace(port_file)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


class ReceiverProcess:
    """Starts the receiver in its own process and reads what it saw."""

    def __init__(self, workdir: Path) -> None:
        self._port_file = workdir / "receiver.port"
        self._log = (workdir / "receiver.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.receiver", str(self._port_file)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
        deadline = time.monotonic() + 30
        while not self._port_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark receiver did not start (see receiver.log)")
            time.sleep(0.02)
        self.base_url = f"http://127.0.0.1:{self._port_file.read_text()}"
        self._control = httpx.Client(base_url=self.base_url, timeout=30, trust_env=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str) -> str:
        return self.base_url + path

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._control.get("/_stats").json()
        return result

    def requests(self) -> int:
        """Requests received on every route, control requests not counted."""
        return sum(self.stats()["requests"].values())

    def arrivals(self) -> dict[str, list[tuple[float, str]]]:
        """Per route, ``(time, webhook-id)`` of every request, in arrival order."""
        raw = self._control.get("/_arrivals").json()
        return {path: [(t, i) for t, i in seen] for path, seen in raw.items()}

    def release(self, prefix: str) -> None:
        """Close the hung requests under ``prefix`` (e.g. ``/hang/<tag>``); later ones
        there are closed at once."""
        self._control.get("/_release" + prefix)

    def reset(self) -> None:
        self._control.get("/_reset")

    def close(self) -> None:
        self._control.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1])))
