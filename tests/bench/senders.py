"""One sender posting bodies on one event loop, in a process of its own.

    python -m tests.bench.senders aiohttp|httpx URL IN_FLIGHT COUNT

The same senders the worker's sending loop uses (``worker.http.aio.AioSender`` behind the
SSRF guard, or ``worker.http.sender.HttpxSender`` on ``httpx.AsyncHTTPTransport``), with
``IN_FLIGHT`` requests outstanding at a time, each with the same 1 KiB body. Prints one
JSON line: ``posts``, ``errors``, ``seconds`` and ``cpu`` (this process's CPU seconds over
the posts, after a warm-up of one round).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import sys
import time
from typing import Any

import httpx

from tests.bench import procstat
from worker.http.aio import AioSender
from worker.http.sender import AsyncSender, HttpxSender, Limits
from worker.http.transport import Guard

LIMITS = Limits(timeout=15.0, connect_timeout=5.0, max_response_bytes=65536, max_header_bytes=16384)
BODY = json.dumps({"data": {"pad": "x" * 1000}}).encode()
HEADERS = {"content-type": "application/json", "webhook-id": "evt_bench"}


def sender(kind: str) -> AsyncSender:
    if kind == "aiohttp":
        return AioSender(Guard(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),)), LIMITS)
    if kind == "httpx":
        transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=1000)
        )
        return HttpxSender(transport, LIMITS)
    raise SystemExit(f"unknown sender {kind!r}")


async def run(kind: str, url: str, in_flight: int, count: int) -> dict[str, Any]:
    client = sender(kind)
    errors = 0

    async def post_many(n: int) -> None:
        nonlocal errors
        for _ in range(n):
            result = await client.post(url, BODY, HEADERS)
            if result.response is None or result.response.status_code != 200:
                errors += 1

    await asyncio.gather(*(post_many(1) for _ in range(in_flight)))  # connect first
    errors = 0
    share = [count // in_flight + (1 if i < count % in_flight else 0) for i in range(in_flight)]
    before = procstat.read(os.getpid())
    started = time.perf_counter()
    await asyncio.gather(*(post_many(n) for n in share))
    seconds = time.perf_counter() - started
    after = procstat.read(os.getpid())
    await client.aclose()
    assert before is not None and after is not None
    return {"posts": count, "errors": errors, "seconds": seconds, "cpu": after.cpu - before.cpu}


if __name__ == "__main__":
    kind, target, width, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(run(kind, target, width, total))))
