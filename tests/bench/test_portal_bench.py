"""The portal's deliveries page over 1,000,000 deliveries on PostgreSQL, beside the same
keyset query called directly, in one run.

    CATENTIO_BENCH=1 python -m pytest tests/bench/test_portal_bench.py -s

Seeds one workspace with three endpoints and 1,000,000 deliveries (333,334 events) with
multi-row INSERTs (SQLAlchemy's insertmanyvalues), then asks for the deliveries page
through the portal under uvicorn (``Server-Timing`` gives the server's own time; the
client's round trip is reported too) and calls ``delivery_page`` itself, for the newest
page, a page deep in the history (by cursor), a status filter, an event-type filter and
one endpoint. The HTTP API's ``GET /v1/webhooks/{id}/deliveries`` is measured beside
them once it is on main. ``CATENTIO_BENCH_DELIVERIES`` changes the size.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, text

from outbox import ids
from outbox.models import Delivery, DeliveryStatus, Endpoint, Event
from tests.support.portal import PORTAL_SECRET, PortalServer, serve, standalone_app
from worker.ops.history import DeliveryFilter, delivery_page
from worker.portal.app import create_portal_app
from worker.portal.tokens import Tokens
from worker.runtime import Runtime

pytestmark = [pytest.mark.bench, pytest.mark.timeout(3600)]

DELIVERIES = int(os.environ.get("CATENTIO_BENCH_DELIVERIES", "1000000"))
ROUNDS = 200
CHUNK = 5000  # events per transaction
TYPES = ("run.succeeded", "run.failed", "subtask.failed", "project.paused")


def _seed(runtime: Runtime) -> tuple[list[str], str]:
    """Endpoints, events and deliveries, one event a second back from now; returns the
    endpoint ids and a cursor half-way through the history."""
    now = runtime.clock()
    endpoint_ids = [ids.new_id(ids.ENDPOINT) for _ in range(3)]
    events = -(-DELIVERIES // 3)
    with runtime.sessions() as session, session.begin():
        session.execute(
            insert(Endpoint.__table__),  # type: ignore[attr-defined]
            [
                {
                    "id": endpoint_id,
                    "workspace_id": "ws_bench",
                    "url": f"https://e{n}.example/",
                    "event_types": ["*"],
                    "scheme": "v1",
                    "secrets": [],
                    "headers": {},
                    "enabled": True,
                    "paused": False,
                    "consecutive_failures": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for n, endpoint_id in enumerate(endpoint_ids)
            ],
        )
    middle = ""
    made = 0
    for start in range(0, events, CHUNK):
        event_rows, delivery_rows = [], []
        for i in range(start, min(start + CHUNK, events)):
            created = now - timedelta(seconds=events - i)
            ms = int(created.timestamp() * 1000)
            event_id = ids.new_id(ids.EVENT, now_ms=ms)
            event_type = TYPES[i % len(TYPES)]
            event_rows.append(
                {
                    "id": event_id,
                    "workspace_id": "ws_bench",
                    "type": event_type,
                    "body": "{}",
                    "created_at": created,
                    "dispatched_at": created,
                }
            )
            for k, endpoint_id in enumerate(endpoint_ids):
                if made == DELIVERIES:
                    break
                made += 1
                status = DeliveryStatus.FAILED if (i + k) % 50 == 0 else DeliveryStatus.SUCCEEDED
                delivery_rows.append(
                    {
                        "id": ids.new_id(ids.DELIVERY, now_ms=ms),
                        "event_id": event_id,
                        "endpoint_id": endpoint_id,
                        "workspace_id": "ws_bench",
                        "event_type": event_type,
                        "status": status,
                        "attempt_count": 1,
                        "cycle_attempts": 1,
                        "next_trigger": "scheduled",
                        "last_status_code": 200,
                        "created_at": created,
                        "updated_at": created,
                        "completed_at": created,
                    }
                )
        with runtime.sessions() as session, session.begin():
            # Core executemany: SQLAlchemy sends these as multi-row INSERTs ("insertmanyvalues").
            session.execute(insert(Event.__table__), event_rows)  # type: ignore[attr-defined]
            session.execute(insert(Delivery.__table__), delivery_rows)  # type: ignore[attr-defined]
        if not middle and made >= DELIVERIES // 2:
            middle = delivery_rows[-1]["id"]  # about half the history is older
    with runtime.engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.commit()
    return endpoint_ids, middle


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _cpu() -> float:
    """This process's user + system CPU seconds (from /proc, as os.times reads it)."""
    times = os.times()
    return times.user + times.system


def test_deliveries_page_over_a_million_deliveries(
    postgres_url: str,
    make_runtime: Callable[..., Runtime],
) -> None:
    """Report p50/p99 of the page's server time and of the bare query, per selection."""
    runtime = make_runtime(postgres_url, log_level="WARNING")
    started = time.perf_counter()
    endpoint_ids, middle = _seed(runtime)
    seeded = time.perf_counter() - started
    tokens = Tokens((PORTAL_SECRET,))
    app = create_portal_app(runtime.settings, sessions=runtime.sessions, tokens=tokens)
    with serve(standalone_app(app)) as url:
        _measure(runtime, PortalServer(url, runtime, tokens), endpoint_ids, middle, seeded)


def _measure(
    runtime: Runtime, portal: PortalServer, endpoint_ids: list[str], middle: str, seeded: float
) -> None:
    selections: dict[str, tuple[str, dict[str, Any]]] = {
        "newest page": ("", {}),
        "deep page (cursor half-way)": (f"after={middle}", {"after": middle}),
        "status=failed": ("status=failed", {"statuses": ("failed",)}),
        "type=run.*": ("type=run.*", {"event_types": ("run.*",)}),
        "one endpoint": (f"endpoint={endpoint_ids[1]}", {"endpoint_id": endpoint_ids[1]}),
    }
    lines = [
        f"\nportal deliveries page, {DELIVERIES:,} deliveries on PostgreSQL "
        f"(seeded in {seeded:.0f} s), {ROUNDS} requests each, ms:",
        f"  {'selection':30} {'page p50':>9} {'page p99':>9} {'client p50':>10} "
        f"{'query p50':>9} {'query p99':>9} {'CPU/page':>9}",
    ]
    with portal.client("ws_bench") as client:
        for name, (query, where) in selections.items():
            url = f"/portal/deliveries?{query}"
            assert client.get(url).status_code == 200  # warm up
            server, round_trip = [], []
            cpu = _cpu()
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                response = client.get(url)
                round_trip.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200 and response.text.count("<tr>") >= 50
                server.append(float(response.headers["server-timing"].split("dur=")[1]))
            cpu_per_page = (_cpu() - cpu) / ROUNDS * 1000
            after = where.pop("after", None)
            selection = DeliveryFilter(workspace_id="ws_bench", **where)
            bare = []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                with runtime.sessions() as session:
                    page = delivery_page(session, selection, limit=50, after=after)
                bare.append((time.perf_counter() - t0) * 1000)
                assert len(page.rows) == 50
            p50, p99 = _percentiles(server)
            q50, q99 = _percentiles(bare)
            lines.append(
                f"  {name:30} {p50:9.1f} {p99:9.1f} {statistics.median(round_trip):10.1f} "
                f"{q50:9.1f} {q99:9.1f} {cpu_per_page:9.1f}"
            )
    lines.append(
        "  (page: Server-Timing of the portal; client: httpx round trip on loopback; query: "
        "delivery_page alone; CPU/page: this process (uvicorn, httpx client, query) per page)"
    )
    lines.append(
        "  HTTP API GET /v1/webhooks/{id}/deliveries: not measured (the API is not on main)"
    )
    print("\n".join(lines))
    with httpx.Client(base_url=portal.url) as anonymous:
        assert anonymous.get("/portal/deliveries").status_code == 401
