"""Metrics from real processes: what `run`, `poller` and `worker` export while delivering."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from outbox import Event, publish
from tests.support.scrape import metered
from tests.support.services import db_schema_of, engine_for
from tests.support.waiting import wait_until
from worker.demo.receiver import always


def seed(runtime: Any, add_endpoint: Any, receiver: Any, count: int) -> None:
    add_endpoint(runtime, receiver=receiver, path="/ok", event_types=("run.succeeded",))
    add_endpoint(
        runtime, receiver=receiver, path="/down", behaviour=always(503), event_types=("run.*",)
    )
    with runtime.sessions() as session, session.begin():
        for i in range(count):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i})


def dispatched_event_types(database_url: str) -> list[str]:
    """The types of the events fanned out so far, oldest first."""
    engine = engine_for(database_url)
    try:
        with Session(engine) as session:
            query = select(Event.type).where(Event.dispatched_at.is_not(None)).order_by(Event.id)
            return list(session.scalars(query))
    finally:
        engine.dispose()


def test_run_exports_attempts_holds_and_state(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any, receiver: Any
) -> None:
    """Embedded `run` with metrics on: successes and 5xx failures are counted by outcome and
    status class, the failing endpoint's circuit opens and holds deliveries, the state
    gauges read the database, and /healthz and /readyz answer."""
    seed(make_runtime(sqlite_url), add_endpoint, receiver, 20)
    env = {
        "DATABASE_URL": sqlite_url,
        "CATENTIO_DB_SCHEMA": db_schema_of(sqlite_url),
        "CATENTIO_POLL_INTERVAL": "50ms",
        # The last delay is long: the probe's delivery must not be exhausted (and its
        # webhook.delivery.exhausted notice fanned out) before the poll count is read.
        "CATENTIO_RETRY_SCHEDULE": "200ms,200ms,30s",
        "CATENTIO_CIRCUIT_THRESHOLD": "3",
    }
    with metered(env, "run", "--threads", "4") as running:
        ok = "catentio_webhooks_attempts_total{outcome=succeeded,status_class=2xx}"
        assert wait_until(lambda: running.scrape().get(ok, 0) >= 20, timeout=30), running.lines
        failed = "catentio_webhooks_attempts_total{outcome=retry,status_class=5xx}"
        held = "catentio_webhooks_deliveries_held_total{reason=circuit}"
        assert wait_until(lambda: running.scrape().get(held, 0) >= 1, timeout=30)
        got = running.scrape()
        assert got[failed] >= 3
        assert got["catentio_webhooks_first_attempt_latency_seconds_count"] >= 20
        assert got["catentio_webhooks_attempt_duration_seconds_count"] >= 23
        # Every event fanned out is counted once: the 20 published, plus the operational
        # events (webhook.delivery.exhausted …) the failing endpoint may have caused by now.
        fanned_out = got["catentio_webhooks_poll_batch_events_sum"]
        types = dispatched_event_types(sqlite_url)
        assert 20 <= fanned_out <= len(types)
        assert [t for t in types if not t.startswith("webhook.")] == ["run.succeeded"] * 20
        assert got["catentio_webhooks_state_up"] == 1
        # The state gauges are cached for a moment: wait for the open circuit to show.
        circuit = "catentio_webhooks_endpoints_circuit_open"
        assert wait_until(lambda: running.scrape()[circuit] == 1, timeout=30)
        assert running.scrape()["catentio_webhooks_outbox_lag_seconds"] == 0
        assert got["catentio_webhooks_info{process=run,version=0.1.0}"] == 1
        assert httpx.get(f"{running.base_url}/healthz").status_code == 200
        ready = httpx.get(f"{running.base_url}/readyz")
        assert ready.status_code == 200, ready.text
        assert "ok database" in ready.text and "ok broker" in ready.text


def test_poller_and_worker_each_export_their_part(
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Any,
) -> None:
    """On PostgreSQL + Redis the poller counts batches and the worker counts attempts, each
    on its own port; both export the state gauges; /readyz checks the real Redis."""
    seed(make_runtime(postgres_url), add_endpoint, receiver, 10)
    env = {
        "DATABASE_URL": postgres_url,
        "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url),
        "REDIS_URL": redis_server,
        "CATENTIO_REDIS_NAMESPACE": redis_namespace,
        "CATENTIO_POLL_INTERVAL": "50ms",
    }
    with metered(env, "poller") as poller, metered(env, "worker", "--threads", "2") as worker:
        assert poller.port != worker.port
        ok = "catentio_webhooks_attempts_total{outcome=succeeded,status_class=2xx}"
        assert wait_until(lambda: worker.scrape().get(ok, 0) >= 10, timeout=30)
        polled = poller.scrape()
        assert polled["catentio_webhooks_poll_batch_events_sum"] == 10
        assert polled[ok] == 0  # the poller makes no attempts
        assert worker.scrape().get("catentio_webhooks_poll_batch_events_count", 0) == 0
        for process in (poller, worker):
            assert process.scrape()["catentio_webhooks_state_up"] == 1
            ready = httpx.get(f"{process.base_url}/readyz")
            assert ready.status_code == 200 and "ok broker: reachable (redis)" in ready.text
