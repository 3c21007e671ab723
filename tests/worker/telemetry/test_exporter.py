"""The per-process listener: /metrics, /healthz, /readyz over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from worker.errors import ConfigurationError
from worker.ops.checks import Check
from worker.settings import Settings
from worker.telemetry.exporter import MetricsServer, Telemetry

READY = [Check("database", True, "reachable"), Check("broker", True, "reachable")]


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[MetricsServer] = []

    def start(telemetry: Telemetry, readiness: Any = lambda: READY) -> str:
        server = telemetry.serve(readiness)
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.close()


def test_metrics_health_and_readiness(serve: Any) -> None:
    """/metrics is the Prometheus text format with our metrics and the process figures;
    /healthz is 200; /readyz is 200 with one line per check; other paths 404."""
    telemetry = Telemetry(Settings(metrics_port=0), process="worker")
    telemetry.metrics.attempt_finished("succeeded", "2xx", 0.01)
    base = serve(telemetry)
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'catentio_webhooks_attempts_total{outcome="succeeded",status_class="2xx"} 1.0' in text
    assert "process_cpu_seconds_total" in text
    assert "_created" not in text  # no creation-time series beside every counter
    assert 'catentio_webhooks_info{process="worker"' in text
    assert httpx.get(f"{base}/healthz").text == "ok\n"
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200
    assert ready.text == "ok database: reachable\nok broker: reachable\n"
    assert httpx.get(f"{base}/nope").status_code == 404


def test_readyz_is_503_when_a_dependency_is_down(serve: Any) -> None:
    """/readyz says which dependency failed, with 503; /healthz stays 200 (the process
    itself is alive, restarting it would not bring the database back)."""
    down = [Check("database", False, "unreachable: refused"), READY[1]]
    base = serve(Telemetry(Settings(metrics_port=0), process="poller"), lambda: down)
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 503
    assert "FAIL database: unreachable: refused" in ready.text
    assert httpx.get(f"{base}/healthz").status_code == 200


def test_off_unless_a_port_is_set() -> None:
    """Without CATENTIO_METRICS_PORT there is nothing to serve."""
    with pytest.raises(ValueError, match="CATENTIO_METRICS_PORT"):
        Telemetry(Settings(), process="worker").serve(lambda: READY)


def test_asgi_app_for_the_api_process() -> None:
    """The API mounts an ASGI app that serves the same registry."""
    from fastapi import FastAPI

    telemetry = Telemetry(Settings(), process="api")
    telemetry.metrics.own_failure("broker")
    app = FastAPI()
    app.mount("/metrics", telemetry.asgi_app())

    async def scrape() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get("/metrics/")

    response = asyncio.run(scrape())
    assert response.status_code == 200
    assert 'catentio_webhooks_own_failures_total{kind="broker"} 1.0' in response.text


def test_a_taken_port_is_one_clear_error(serve: Any) -> None:
    """A second listener on the same port: a ConfigurationError naming the variable."""
    first = Telemetry(Settings(metrics_port=0), process="worker")
    port = int(serve(first).rsplit(":", 1)[1])
    second = Telemetry(Settings(metrics_port=port), process="worker")
    with pytest.raises(ConfigurationError, match=f"CATENTIO_METRICS_PORT={port}: cannot listen"):
        second.serve(lambda: READY)


def test_asgi_exporter_answers_like_the_listener_and_caches_readiness() -> None:
    """The API's exporter app: /readyz is 503 naming what failed, asked at most once a
    second however many probes arrive; /healthz 200; other paths 404; the request
    families are only registered once asked for."""
    asked: list[int] = []

    def readiness() -> list[Check]:
        asked.append(1)
        return [Check("database", False, "unreachable: refused"), READY[1]]

    telemetry = Telemetry(Settings(), process="api")
    assert "catentio_webhooks_api_requests" not in _names(telemetry)
    telemetry.request_metrics().request_finished("GET", "/v1/webhooks", 200, 0.01)
    assert telemetry.request_metrics() is telemetry.request_metrics()
    app = telemetry.asgi_exporter(readiness)

    async def probe() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            paths = ["/readyz"] * 5 + ["/healthz", "/metrics", "/nope"]
            return [await client.get(path) for path in paths]

    *ready, healthz, metrics, nope = asyncio.run(probe())
    assert {r.status_code for r in ready} == {503}
    assert ready[0].text == "FAIL database: unreachable: refused\nok broker: reachable\n"
    assert len(asked) == 1
    assert (healthz.status_code, healthz.text) == (200, "ok\n")
    line = (
        'catentio_webhooks_api_requests_total{method="GET",route="/v1/webhooks",status_class="2xx"}'
    )
    assert f"{line} 1.0" in metrics.text
    assert nope.status_code == 404


def _names(telemetry: Telemetry) -> set[str]:
    return {family.name for family in telemetry.registry.collect()}
