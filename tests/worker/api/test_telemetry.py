"""The API process's own telemetry: requests counted by route template, /metrics,
/healthz and /readyz on its own port, and the request's span continued down to the
fan-out of the events it published."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import generate_latest
from sqlalchemy import select

from outbox.models import Event
from tests.support.api import Api, assert_error
from tests.support.scrape import parse
from tests.support.waiting import wait_until
from worker.telemetry.otel import OTelTracing

REQUESTS = "catentio_webhooks_api_requests_total"
SECONDS = "catentio_webhooks_api_request_duration_seconds"


def scrape(api: Api) -> dict[str, float]:
    response = httpx.get(f"{api.base_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return parse(response.text)


def requests_of(figures: dict[str, float], method: str, route: str, klass: str) -> float:
    return figures.get(f"{REQUESTS}{{method={method},route={route},status_class={klass}}}", 0.0)


def test_requests_are_counted_by_route_template(
    make_api: Callable[..., Api], sqlite_url: str
) -> None:
    """Known routes by their template (never an id), the portal's under its mount,
    unknown paths as one `unmatched` value (or the mount's prefix inside the portal),
    unknown methods as `other`, a 413 answered before routing under its route; the
    durations by method and route."""
    api = make_api(sqlite_url, metered=True, api_metrics=True)
    client = api.as_workspace()
    assert client.get("/v1/webhooks").status_code == 200
    assert client.get("/v1/webhooks/ep_missing").status_code == 404
    for i in range(3):
        assert client.get(f"/no/such/path/{i}").status_code == 404
    assert client.request("BREW", "/v1/webhooks").status_code == 405
    # The portal mounted in the API: its own templates under its prefix.
    assert client.get("/portal/deliveries/dlv_missing").status_code == 401
    assert client.get("/portal/no/such/page").status_code == 404
    too_large = "x" * (api.settings.max_body_bytes + 64 * 1024)
    big = client.post("/v1/events", json={"type": "run.succeeded", "data": {"x": too_large}})
    assert_error(big, 413, "PAYLOAD_TOO_LARGE")
    # A request is counted once its last byte is sent, a moment after the client has it.
    assert wait_until(lambda: requests_of(scrape(api), "POST", "/v1/events", "4xx") == 1)
    figures = scrape(api)
    assert requests_of(figures, "GET", "/v1/webhooks", "2xx") == 1
    assert requests_of(figures, "GET", "/v1/webhooks/{webhook_id}", "4xx") == 1
    assert requests_of(figures, "GET", "unmatched", "4xx") == 3
    assert requests_of(figures, "other", "/v1/webhooks", "4xx") == 1
    assert requests_of(figures, "POST", "/v1/events", "4xx") == 1
    assert requests_of(figures, "GET", "/portal/deliveries/{delivery_id}", "4xx") == 1
    assert requests_of(figures, "GET", "/portal", "4xx") == 1
    assert figures[f"{SECONDS}_count{{method=GET,route=/v1/webhooks}}"] == 1
    assert figures[f"{SECONDS}_sum{{method=GET,route=/v1/webhooks}}"] > 0
    assert not [name for name in figures if "_missing" in name or "/no/such" in name]
    # The registry is the process's: its info, and the state gauges of the database.
    assert figures["catentio_webhooks_info{process=api,version=0.1.0}"] == 1
    assert figures["catentio_webhooks_state_up"] == 1
    assert "catentio_webhooks_outbox_lag_seconds" in figures
    # Scrapes count too, under their own path.
    assert requests_of(figures, "GET", "/metrics", "2xx") >= 1


def test_the_exporter_paths_are_for_operators_not_api_callers(
    make_api: Callable[..., Api], sqlite_url: str
) -> None:
    """/metrics, /healthz and /readyz need no key, carry no envelope, spend no rate
    limit and are not part of the OpenAPI document."""
    api = make_api(sqlite_url, metered=True, api_metrics=True, api_read_limit="2/minute")
    for _ in range(4):
        response = httpx.get(f"{api.base_url}/metrics", timeout=10)
        assert response.status_code == 200
        assert "x-ratelimit-limit" not in response.headers
    assert response.headers["content-type"].startswith("text/plain")
    healthz = httpx.get(f"{api.base_url}/healthz", timeout=10)
    assert (healthz.status_code, healthz.text) == (200, "ok\n")
    readyz = httpx.get(f"{api.base_url}/readyz", timeout=10)
    assert readyz.status_code == 200
    assert "ok database: reachable (sqlite)" in readyz.text
    assert "ok broker: in-process" in readyz.text
    paths = httpx.get(f"{api.base_url}/openapi.json", timeout=10).json()["paths"]
    assert not {"/metrics", "/healthz", "/readyz"} & set(paths)
    assert "/v1/system/health" in paths


def test_readyz_on_postgresql_and_redis(
    make_api: Callable[..., Api], postgres_url: str, redis_server: str, redis_namespace: str
) -> None:
    """/readyz checks the real database and broker the API uses."""
    api = make_api(
        postgres_url,
        metered=True,
        api_metrics=True,
        redis_url=redis_server,
        redis_namespace=redis_namespace,
    )
    readyz = httpx.get(f"{api.base_url}/readyz", timeout=10)
    assert readyz.status_code == 200, readyz.text
    assert "ok database: reachable (postgresql)" in readyz.text
    assert "ok broker: reachable (redis)" in readyz.text
    assert scrape(api)["catentio_webhooks_state_up"] == 1


@pytest.mark.parametrize("metered", [False, True])
def test_off_by_default(make_api: Callable[..., Api], sqlite_url: str, metered: bool) -> None:
    """Without CATENTIO_API_METRICS the API port has no /metrics (with metrics on, they
    are on the metrics port only): the API's own 404."""
    api = make_api(sqlite_url, metered=metered)
    assert_error(httpx.get(f"{api.base_url}/metrics", timeout=10), 404, "NOT_FOUND")
    assert_error(httpx.get(f"{api.base_url}/readyz", timeout=10), 404, "NOT_FOUND")
    if metered:
        telemetry = api.service.context.telemetry
        assert telemetry is not None
        api.as_workspace().get("/v1/webhooks")
        line = f'{REQUESTS}{{method="GET",route="/v1/webhooks",status_class="2xx"}} 1.0'
        # Counted once the response has gone out, a moment after the client has it.
        assert wait_until(lambda: line in generate_latest(telemetry.registry).decode())


def server_spans(exporter: InMemorySpanExporter) -> list[Any]:
    """The SERVER spans, once one has ended (a moment after the client has its answer)."""
    assert wait_until(lambda: any(s.kind == SpanKind.SERVER for s in exporter.get_finished_spans()))
    return [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]


def test_post_events_continues_the_callers_trace_to_the_fan_out(
    make_api: Callable[..., Api], make_runtime: Any, database_url: str
) -> None:
    """POST /v1/events with a traceparent: the request's SERVER span is its child, the
    event stores the request span's context, and the poller's fan-out span is that
    span's child: one trace from the caller to the fan-out (SQLite and PostgreSQL)."""
    exporter = InMemorySpanExporter()
    api = make_api(
        database_url,
        tracing=OTelTracing.with_processor(SimpleSpanProcessor(exporter), process="api"),
    )
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    client = api.as_workspace()
    published = client.post(
        "/v1/events",
        json={"type": "run.succeeded", "data": {"n": 1}},
        headers={"traceparent": f"00-{caller_trace}-{caller_span}-01", "tracestate": "k=v"},
    )
    assert published.status_code == 201, published.text
    (request,) = server_spans(exporter)
    assert request.name == "POST /v1/events"
    assert request.context is not None and request.parent is not None
    assert f"{request.context.trace_id:032x}" == caller_trace
    assert f"{request.parent.span_id:016x}" == caller_span
    attributes = dict(request.attributes or {})
    assert attributes["http.route"] == "/v1/events"
    assert attributes["http.response.status_code"] == 201
    inside = [s for s in exporter.get_finished_spans() if s.parent == request.context]
    assert "INSERT" in {s.name for s in inside}  # the API's SQL, inside the request
    with api.sessions() as session:
        stored = session.scalar(
            select(Event.trace_context).where(Event.id == published.json()["data"]["id"])
        )
    assert stored is not None
    assert stored["traceparent"] == f"00-{caller_trace}-{request.context.span_id:016x}-01"
    assert stored["tracestate"] == "k=v"

    poller_spans = InMemorySpanExporter()
    runtime = make_runtime(
        database_url,
        tracing=OTelTracing.with_processor(SimpleSpanProcessor(poller_spans), process="poller"),
    )
    assert runtime.poller().poll_once().events == 1
    (fan_out,) = [s for s in poller_spans.get_finished_spans() if s.name == "webhook.fan_out"]
    assert fan_out.parent is not None and fan_out.context is not None
    assert fan_out.parent.span_id == request.context.span_id
    assert f"{fan_out.context.trace_id:032x}" == caller_trace


def test_a_request_without_traceparent_starts_a_trace_named_after_its_route(
    make_api: Callable[..., Api], sqlite_url: str
) -> None:
    """No incoming context: a root SERVER span named `METHOD route-template`; a 404 does
    not mark it an error."""
    exporter = InMemorySpanExporter()
    api = make_api(
        sqlite_url,
        tracing=OTelTracing.with_processor(SimpleSpanProcessor(exporter), process="api"),
    )
    assert api.as_workspace().get("/v1/events/evt_missing").status_code == 404
    (request,) = server_spans(exporter)
    assert request.parent is None
    assert request.name == "GET /v1/events/{event_id}"
    assert dict(request.attributes or {})["http.response.status_code"] == 404
    assert request.status.status_code == StatusCode.UNSET  # a 404 is the caller's error
