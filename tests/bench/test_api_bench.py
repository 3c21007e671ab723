"""HTTP API latency on PostgreSQL with 200,000 deliveries on record, beside a bare ASGI
app served by uvicorn the same way, in one run.

    CATENTIO_BENCH=1 python -m pytest tests/bench/test_api_bench.py -s

Both servers are separate processes (``catentio-webhooks api`` and
``tests/bench/bare_asgi.py``); one httpx client in this process sends the requests one
after the other (keep-alive), so the figures are per-request latency, not throughput.
Reported: p50/p99 of ``GET /v1/webhooks/{id}/deliveries`` (a page of 50 from an endpoint
with 100,000 deliveries) and of ``POST /v1/events``, the same for the bare app, the
ratios, and the server's CPU time per request from /proc/PID/stat.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from outbox import ids
from outbox.clock import utcnow
from outbox.envelope import render
from outbox.migrate import upgrade
from outbox.models import Delivery, Endpoint, Event
from tests.support.services import PORTAL_SECRET, TEST_KEY, db_schema_of, engine_for
from worker.access.keys import create_key
from worker.endpoints.secretbox import SecretBox

EVENTS = 100_000
ENDPOINTS = 2  # every event to both: 200,000 deliveries
REQUESTS = 2000
WARMUP = 200
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def seed(url: str) -> tuple[str, str]:
    """Two endpoints in ws_bench and EVENTS events delivered to both; returns an
    endpoint id and a write key."""
    engine = engine_for(url)
    upgrade(engine)
    box = SecretBox([TEST_KEY])
    now = utcnow()
    endpoints = []
    for n in range(ENDPOINTS):
        endpoints.append(
            {
                "id": ids.new_id(ids.ENDPOINT),
                "workspace_id": "ws_bench",
                "url": f"https://e{n}.example/hook",
                "event_types": ["*"],
                "scheme": "v1",
                "secrets": [{"secret": box.encrypt("whsec_" + "A" * 32), "expires_at": None}],
                "headers": {},
                "enabled": True,
                "paused": False,
                "consecutive_failures": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
    with Session(engine) as session, session.begin():
        session.execute(insert(Endpoint), endpoints)
        key = create_key(session, workspace_id="ws_bench").key
    for start in range(0, EVENTS, 5000):
        events, deliveries = [], []
        for i in range(start, min(start + 5000, EVENTS)):
            created = now - timedelta(seconds=EVENTS - i)
            ms = int(created.timestamp() * 1000)
            event_id = ids.new_id(ids.EVENT, now_ms=ms)
            body = render(
                event_id=event_id,
                event_type="run.succeeded",
                workspace_id="ws_bench",
                created_at=created,
                data={"i": i},
                request_id=None,
            )
            events.append(
                {
                    "id": event_id,
                    "workspace_id": "ws_bench",
                    "type": "run.succeeded",
                    "body": body,
                    "created_at": created,
                    "dispatched_at": created,
                }
            )
            for endpoint in endpoints:
                deliveries.append(
                    {
                        "id": ids.new_id(ids.DELIVERY, now_ms=ms),
                        "event_id": event_id,
                        "endpoint_id": endpoint["id"],
                        "workspace_id": "ws_bench",
                        "event_type": "run.succeeded",
                        "status": "succeeded",
                        "attempt_count": 1,
                        "cycle_attempts": 1,
                        "next_trigger": "scheduled",
                        "created_at": created,
                        "updated_at": created,
                        "completed_at": created,
                    }
                )
        with Session(engine) as session, session.begin():
            session.execute(insert(Event), events)
            session.execute(insert(Delivery), deliveries)
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return str(endpoints[0]["id"]), key


def start(command: list[str], env: dict[str, str], base: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/v1/system/health", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"{command} did not start")


def measure(
    client: httpx.Client, pid: int, send: Callable[[int], httpx.Response]
) -> dict[str, float]:
    """Latencies (ms) of REQUESTS calls after WARMUP, and server CPU ms per request."""
    for i in range(WARMUP):
        send(i).raise_for_status()
    cpu_before = cpu_seconds(pid)
    samples = []
    for i in range(REQUESTS):
        started = time.perf_counter()
        response = send(WARMUP + i)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code < 300, response.text
    cpu = (cpu_seconds(pid) - cpu_before) * 1000 / REQUESTS
    quantiles = statistics.quantiles(samples, n=100)
    return {"p50": statistics.median(samples), "p99": quantiles[98], "cpu_ms": cpu}


@pytest.mark.bench
@pytest.mark.timeout(1200)
def test_api_latency_beside_a_bare_asgi_app(
    postgres_url: str, redis_server: str, redis_namespace: str
) -> None:
    """p50/p99 of the two hot routes, and of the bare app, side by side."""
    seeding = time.perf_counter()
    endpoint_id, key = seed(postgres_url)
    print(f"\nseeded {EVENTS * ENDPOINTS:,} deliveries in {time.perf_counter() - seeding:.0f} s")
    api_port, bare_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": postgres_url,
        "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url),
        "REDIS_URL": redis_server,
        "CATENTIO_REDIS_NAMESPACE": redis_namespace,
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_PORTAL_SECRET": PORTAL_SECRET,
        "CATENTIO_API_READ_LIMIT": "1000000/second",
        "CATENTIO_API_WRITE_LIMIT": "1000000/second",
    }
    api_base, bare_base = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}"
    api = start([sys.executable, "-m", "worker", "api", "--port", str(api_port)], env, api_base)
    bare = start([sys.executable, "-m", "tests.bench.bare_asgi", str(bare_port)], env, bare_base)
    results: dict[str, dict[str, float]] = {}
    try:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=api_base, headers=headers) as client:
            path = f"/v1/webhooks/{endpoint_id}/deliveries"
            results["GET deliveries"] = measure(client, api.pid, lambda _i: client.get(path))
            results["POST /v1/events"] = measure(
                client,
                api.pid,
                lambda i: client.post(
                    "/v1/events", json={"type": "run.succeeded", "data": {"i": i}}
                ),
            )
        with httpx.Client(base_url=bare_base) as client:
            results["bare GET"] = measure(client, bare.pid, lambda _i: client.get("/"))
            results["bare POST"] = measure(
                client,
                bare.pid,
                lambda i: client.post("/", json={"type": "run.succeeded", "data": {"i": i}}),
            )
    finally:
        for process in (api, bare):
            process.terminate()
            process.wait(timeout=10)
    print(f"\nPostgreSQL, {EVENTS * ENDPOINTS:,} deliveries on record, {REQUESTS} requests each")
    for name, figures in results.items():
        print(
            f"  {name:<18} p50 {figures['p50']:6.2f} ms  p99 {figures['p99']:6.2f} ms"
            f"  server CPU {figures['cpu_ms']:5.2f} ms/request"
        )
    for ours, bare_name in (("GET deliveries", "bare GET"), ("POST /v1/events", "bare POST")):
        ratio_50 = results[ours]["p50"] / results[bare_name]["p50"]
        ratio_99 = results[ours]["p99"] / results[bare_name]["p99"]
        print(f"  {ours} / bare: p50 x{ratio_50:.1f}, p99 x{ratio_99:.1f}")
