"""The portal's deliveries page over 1,000,000 deliveries on PostgreSQL, beside the same
query through the HTTP API and the keyset query called directly, in one run.

    CATENTIO_BENCH=1 python -m pytest tests/bench/test_portal_bench.py -s

Seeds one workspace with three endpoints and 1,000,000 deliveries (333,334 events) with
multi-row INSERTs (SQLAlchemy's insertmanyvalues), then serves the API process as
production does (real uvicorn, the portal mounted at /portal) and, for each selection,
asks 200 times for the portal's deliveries page, for ``GET /v1/webhooks/{id}/deliveries``
(50 rows, the same selection) and calls ``delivery_page`` itself. Server time is read
from a ``Server-Timing: process;dur=…`` header that a wrapper around the whole API app
adds (the API's middleware included), the same for both doors; the client's round trip
is reported too. The API lists one endpoint's deliveries, so the workspace-wide
selections have no API column. ``CATENTIO_BENCH_DELIVERIES`` changes the size.
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
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from outbox import ids
from outbox.models import Delivery, DeliveryStatus, Endpoint, Event
from tests.support.portal import PortalServer
from worker.access.keys import create_key
from worker.api import cursor
from worker.api.server import ApiService, context_for_runtime
from worker.ops.history import DeliveryFilter, delivery_page
from worker.runtime import Runtime

pytestmark = [pytest.mark.bench, pytest.mark.timeout(3600)]

DELIVERIES = int(os.environ.get("CATENTIO_BENCH_DELIVERIES", "1000000"))
ROUNDS = 200
CHUNK = 5000  # events per transaction
TYPES = ("run.succeeded", "run.failed", "subtask.failed", "project.paused")


def _seed(runtime: Runtime) -> tuple[list[str], str, str]:
    """Endpoints, events and deliveries, one event a second back from now; returns the
    endpoint ids, a delivery half-way through the history and one of the second
    endpoint half-way through its own."""
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
    middle = middle_of_one = ""
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
            middle_of_one = next(
                row["id"]
                for row in reversed(delivery_rows)
                if row["endpoint_id"] == endpoint_ids[1]
            )
    with runtime.engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.commit()
    return endpoint_ids, middle, middle_of_one


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _cpu() -> float:
    """This process's user + system CPU seconds (from /proc, as os.times reads it)."""
    times = os.times()
    return times.user + times.system


class ProcessTiming:
    """``Server-Timing: process;dur=…``: the whole app's time to its response start, so
    the portal and the API are timed the same way (the API's middleware included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                header = (b"server-timing", f"process;dur={elapsed:.2f}".encode())
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, timed)


def _process_ms(response: httpx.Response) -> float:
    for part in response.headers.get_list("server-timing", split_commas=True):
        name, _, value = part.strip().partition(";dur=")
        if name == "process":
            return float(value)
    raise AssertionError(f"no process timing in {response.headers}")


def test_deliveries_page_over_a_million_deliveries(
    postgres_url: str,
    make_runtime: Callable[..., Runtime],
) -> None:
    """Report p50/p99 of the portal page's and the API list's server time and of the
    bare query, per selection."""
    runtime = make_runtime(
        postgres_url,
        log_level="WARNING",
        api_read_limit="1000000/second",
        api_write_limit="1000000/second",
    )
    started = time.perf_counter()
    endpoint_ids, middle, middle_of_one = _seed(runtime)
    seeded = time.perf_counter() - started
    with runtime.sessions() as session, session.begin():
        key = create_key(session, workspace_id="ws_bench", scope="read").key
    context = context_for_runtime(runtime)
    service = ApiService(context, host="127.0.0.1", port=0)
    service.server.config.app = ProcessTiming(service.app)
    service.start()
    try:
        portal = PortalServer(service.base_url, runtime, context.portal_tokens)
        _measure(runtime, portal, key, endpoint_ids, middle, middle_of_one, seeded)
    finally:
        service.stop(dispose=False)


Selection = tuple[str, dict[str, Any], str | None]
"""(portal query string, DeliveryFilter fields + ``after``, API query string or None)."""


def _selections(endpoint_ids: list[str], middle: str, middle_of_one: str) -> dict[str, Selection]:
    one = endpoint_ids[1]

    def api_cursor(after: str) -> str:
        # The filters of GET /v1/webhooks/{id}/deliveries without status/type/time.
        filters = {"endpoint": one, "status": [], "type": [], "since": None, "until": None}
        return cursor.encode(after, filters)

    return {
        "workspace, newest page": ("", {}, None),
        "workspace, deep page (cursor half-way)": (f"after={middle}", {"after": middle}, None),
        "workspace, status=failed": ("status=failed", {"statuses": ("failed",)}, None),
        "workspace, type=run.*": ("type=run.*", {"event_types": ("run.*",)}, None),
        "one endpoint, newest page": (f"endpoint={one}", {"endpoint_id": one}, ""),
        "one endpoint, deep page": (
            f"endpoint={one}&after={middle_of_one}",
            {"endpoint_id": one, "after": middle_of_one},
            f"cursor={api_cursor(middle_of_one)}",
        ),
        "one endpoint, status=failed": (
            f"endpoint={one}&status=failed",
            {"endpoint_id": one, "statuses": ("failed",)},
            "status=failed",
        ),
        "one endpoint, type=run.*": (
            f"endpoint={one}&type=run.*",
            {"endpoint_id": one, "event_types": ("run.*",)},
            "type=run.*",
        ),
    }


def _timed(client: httpx.Client, url: str, check: Callable[[httpx.Response], None]) -> Any:
    """ROUNDS requests of ``url``: server ms, client ms, this process's CPU ms each."""
    check(client.get(url))  # warm up
    server, round_trip = [], []
    cpu = _cpu()
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        response = client.get(url)
        round_trip.append((time.perf_counter() - t0) * 1000)
        check(response)
        server.append(_process_ms(response))
    return server, round_trip, (_cpu() - cpu) / ROUNDS * 1000


def _portal_page(response: httpx.Response) -> None:
    assert response.status_code == 200 and response.text.count("<tr>") >= 50, response.text[:500]


def _api_page(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["data"]) == 50


def _measure(
    runtime: Runtime,
    portal: PortalServer,
    key: str,
    endpoint_ids: list[str],
    middle: str,
    middle_of_one: str,
    seeded: float,
) -> None:
    lines = [
        f"\ndeliveries list, {DELIVERIES:,} deliveries on PostgreSQL (seeded in {seeded:.0f} s), "
        f"{ROUNDS} requests each, ms (server: Server-Timing of the API process):",
        f"  {'selection':40} {'portal p50':>10} {'p99':>7} {'API p50':>8} {'p99':>7} "
        f"{'query p50':>9} {'p99':>7} {'client p50 portal/API':>22} {'CPU/req portal/API':>19}",
    ]
    one = endpoint_ids[1]
    api = httpx.Client(base_url=portal.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    with portal.client("ws_bench") as client, api:
        for name, (query, where, api_query) in _selections(
            endpoint_ids, middle, middle_of_one
        ).items():
            page_ms, page_rt, page_cpu = _timed(client, f"/portal/deliveries?{query}", _portal_page)
            api_cells = f"{'-':>8} {'-':>7}"
            api_rt_cell, api_cpu_cell = "-", "-"
            if api_query is not None:
                api_ms, api_rt, api_cpu = _timed(
                    api, f"/v1/webhooks/{one}/deliveries?limit=50&{api_query}", _api_page
                )
                a50, a99 = _percentiles(api_ms)
                api_cells = f"{a50:8.1f} {a99:7.1f}"
                api_rt_cell = f"{statistics.median(api_rt):.1f}"
                api_cpu_cell = f"{api_cpu:.1f}"
            fields = dict(where)
            after = fields.pop("after", None)
            selection = DeliveryFilter(workspace_id="ws_bench", **fields)
            bare = []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                with runtime.sessions() as session:
                    rows = delivery_page(session, selection, limit=50, after=after).rows
                bare.append((time.perf_counter() - t0) * 1000)
                assert len(rows) == 50
            p50, p99 = _percentiles(page_ms)
            q50, q99 = _percentiles(bare)
            client_cell = f"{statistics.median(page_rt):.1f} / {api_rt_cell}"
            cpu_cell = f"{page_cpu:.1f} / {api_cpu_cell}"
            lines.append(
                f"  {name:40} {p50:10.1f} {p99:7.1f} {api_cells} {q50:9.1f} {q99:7.1f} "
                f"{client_cell:>22} {cpu_cell:>19}"
            )
    lines.append(
        "  (portal: GET /portal/deliveries, HTML; API: GET /v1/webhooks/{id}/deliveries?limit=50, "
        "JSON; query: delivery_page alone; CPU/req: this process (uvicorn, httpx client, "
        "query) per request; the API lists one endpoint's deliveries: no column for the "
        "workspace-wide rows)"
    )
    print("\n".join(lines))
    with httpx.Client(base_url=portal.url) as anonymous:
        assert anonymous.get("/portal/deliveries").status_code == 401
        assert anonymous.get(f"/v1/webhooks/{one}/deliveries").status_code == 401
