"""The state gauges: what the database says, read at scrape time, cached briefly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from outbox import publish
from outbox.database import make_engine
from outbox.models import Delivery, Endpoint, Event
from tests.support.clock import ManualClock
from worker.telemetry.gauges import StateGauges


def values(gauges: StateGauges) -> dict[str, float]:
    return {
        sample.name.removeprefix("catentio_webhooks_")
        + "".join(f"{{{k}={v}}}" for k, v in sample.labels.items()): sample.value
        for family in gauges.collect()
        for sample in family.samples
    }


def test_gauges_reflect_the_database(
    database_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """Lag, waiting events, backlog, in flight, open circuits, disabled and paused
    endpoints are what the rows say (SQLite and PostgreSQL)."""
    clock = ManualClock()
    runtime = make_runtime(database_url, clock=clock)
    healthy = add_endpoint(runtime, url="https://a.example/hook").endpoint
    failing = add_endpoint(runtime, url="https://b.example/hook").endpoint
    add_endpoint(runtime, url="https://c.example/hook")
    with runtime.sessions() as session, session.begin():
        for i in range(4):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i})
    runtime.poller().poll_once()  # 4 events x 3 endpoints = 12 deliveries, all due
    with runtime.sessions() as session, session.begin():
        publish(session, workspace_id="ws_a", type="run.succeeded", data={"late": True})
        session.execute(
            update(Event)
            .where(Event.dispatched_at.is_(None))
            .values(created_at=clock.now - timedelta(seconds=42))
        )
        leased = session.scalars(
            Delivery.__table__.select().with_only_columns(Delivery.id).limit(2)
        ).all()
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(leased))
            .values(lease_until=clock.now + timedelta(seconds=30), lease_token="t")
        )
        session.execute(
            update(Endpoint).where(Endpoint.id == failing.id).values(consecutive_failures=9)
        )
        held = session.scalars(
            Delivery.__table__.select()
            .with_only_columns(Delivery.id)
            .where(Delivery.id.not_in(leased))
            .limit(3)
        ).all()
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(held))
            .values(held_by="circuit", next_attempt_at=clock.now + timedelta(minutes=1))
        )
        session.execute(update(Endpoint).where(Endpoint.id == healthy.id).values(paused=True))
        session.execute(
            update(Endpoint)
            .where(Endpoint.id.not_in([healthy.id, failing.id]))
            .values(enabled=False, disabled_reason="gone")
        )
    gauges = StateGauges(runtime.sessions, circuit_threshold=5, clock=clock, cache_seconds=0)
    got = values(gauges)
    assert got["state_up"] == 1
    assert got["outbox_waiting_events"] == 1
    assert got["outbox_lag_seconds"] == 42
    assert got["deliveries_due"] == 7  # 12, less 2 leased, less 3 held until later
    assert got["deliveries_on_hold{reason=circuit}"] == 3
    assert got["deliveries_on_hold{reason=rate}"] == 0
    assert got["deliveries_in_flight"] == 2
    assert got["endpoints_circuit_open"] == 1
    assert got["endpoints_disabled"] == 1
    assert got["endpoints_paused"] == 1


def test_answers_are_cached_for_a_moment(sqlite_url: str, make_runtime: Any) -> None:
    """Two scrapes within cache_seconds cost one round of queries; later, a new round."""
    runtime = make_runtime(sqlite_url)
    moment = [100.0]
    gauges = StateGauges(
        runtime.sessions, circuit_threshold=5, cache_seconds=2.0, monotonic=lambda: moment[0]
    )
    assert values(gauges)["outbox_waiting_events"] == 0
    with runtime.sessions() as session, session.begin():
        publish(session, workspace_id="ws_a", type="run.succeeded", data={})
    moment[0] += 1.0
    assert values(gauges)["outbox_waiting_events"] == 0  # cached
    moment[0] += 1.5
    assert values(gauges)["outbox_waiting_events"] == 1


def test_database_down_drops_the_figures_not_the_scrape(tmp_path: Any) -> None:
    """An unreachable database: state_up 0 and no stale figures; collect() never raises."""
    engine = make_engine(f"sqlite:///{tmp_path}/missing/dir/db.sqlite3")
    gauges = StateGauges(sessionmaker(engine), circuit_threshold=5, cache_seconds=0)
    assert values(gauges) == {"state_up": 0.0}
    engine.dispose()
