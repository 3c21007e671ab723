"""The endpoint chart's data: attempts per minute by outcome, and their latency, over a
day, bucketed by the database (SQLite and PostgreSQL differ in how)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from outbox import ids
from outbox.database import make_engine, make_session_factory
from outbox.models import Attempt, Delivery, Endpoint, Event
from worker.ops.timeline import Minute, attempt_timeline
from worker.portal.chart import BARS_HEIGHT, WIDTH, build_chart

NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)


def _seed(url: str) -> tuple[str, str]:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    rows: dict[type, list[dict[str, object]]] = {Endpoint: [], Event: [], Delivery: [], Attempt: []}
    endpoint_ids = []
    for name in ("one", "two"):
        endpoint_id = ids.new_id(ids.ENDPOINT)
        endpoint_ids.append(endpoint_id)
        rows[Endpoint].append(
            {
                "id": endpoint_id,
                "workspace_id": "ws_a",
                "url": f"https://{name}.example/",
                "event_types": ["*"],
                "scheme": "v1",
                "secrets": [],
                "headers": {},
                "enabled": True,
                "paused": False,
                "consecutive_failures": 0,
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
    event_id = ids.new_id(ids.EVENT)
    rows[Event].append(
        {
            "id": event_id,
            "workspace_id": "ws_a",
            "type": "run.succeeded",
            "body": "{}",
            "created_at": NOW,
            "dispatched_at": NOW,
        }
    )
    # Endpoint one: at 11:58:10 two successes (100, 300 ms) and one failure (200 ms);
    # at 11:59:59 one success; 25 hours ago one (outside the window).
    attempts = [
        (0, NOW - timedelta(minutes=2, seconds=20), "succeeded", 100.0),
        (0, NOW - timedelta(minutes=2, seconds=10), "succeeded", 300.0),
        (0, NOW - timedelta(minutes=2, seconds=5), "retry", 200.0),
        (0, NOW - timedelta(seconds=31), "succeeded", 50.0),
        (0, NOW - timedelta(hours=25), "succeeded", 50.0),
        (1, NOW - timedelta(minutes=10), "failed", 5000.0),
    ]
    delivery_ids = []
    for endpoint_id in endpoint_ids:
        delivery_ids.append(ids.new_id(ids.DELIVERY))
        rows[Delivery].append(
            {
                "id": delivery_ids[-1],
                "event_id": event_id,
                "endpoint_id": endpoint_id,
                "workspace_id": "ws_a",
                "event_type": "run.succeeded",
                "status": "succeeded",
                "attempt_count": 1,
                "cycle_attempts": 1,
                "next_trigger": "scheduled",
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
    for number, (which, started, outcome, duration) in enumerate(attempts, start=1):
        rows[Attempt].append(
            {
                "id": ids.new_id(ids.ATTEMPT),
                "delivery_id": delivery_ids[which],
                "number": number,
                "trigger": "scheduled",
                "url": "https://x.example/",
                "started_at": started,
                "duration_ms": duration,
                "request_headers": {},
                "response_truncated": False,
                "outcome": outcome,
            }
        )
    with sessions() as session, session.begin():
        for model, values in rows.items():
            session.execute(insert(model.__table__), values)  # type: ignore[attr-defined]
    engine.dispose()
    return endpoint_ids[0], endpoint_ids[1]


def test_attempts_are_bucketed_per_minute_with_outcome_and_latency(migrated: str) -> None:
    """Each minute with attempts comes back once, oldest first, with its successes,
    failures, mean and max latency; attempts older than the window are left out."""
    one, two = _seed(migrated)
    engine = make_engine(migrated)
    with make_session_factory(engine)() as session:
        timeline = attempt_timeline(session, [one, two, "ep_none"], now=NOW)
    engine.dispose()
    minute = datetime(2026, 12, 1, 11, 58, tzinfo=UTC)
    assert timeline[one] == [
        Minute(start=minute, succeeded=2, failed=1, mean_ms=200.0, max_ms=300.0),
        Minute(
            start=minute + timedelta(minutes=1), succeeded=1, failed=0, mean_ms=50.0, max_ms=50.0
        ),
    ]
    assert [(m.succeeded, m.failed) for m in timeline[two]] == [(0, 1)]
    assert timeline["ep_none"] == []


def test_the_chart_scales_bars_to_the_busiest_minute_and_says_so_in_words() -> None:
    """The busiest minute fills the bar lane; the summary gives totals for screen readers."""
    minutes = [
        Minute(start=NOW - timedelta(hours=23), succeeded=4, failed=0, mean_ms=100.0, max_ms=120.0),
        Minute(
            start=NOW - timedelta(minutes=1), succeeded=1, failed=1, mean_ms=300.0, max_ms=400.0
        ),
    ]
    chart = build_chart(minutes, now=NOW, label="https://one.example/")
    first, last = chart.bars
    assert first.ok_height == BARS_HEIGHT and first.failed_height == 0
    assert last.ok_height == last.failed_height == BARS_HEIGHT / 4
    assert first.x < WIDTH / 10 and last.x > WIDTH * 0.99
    assert chart.max_attempts == 4 and chart.succeeded == 5 and chart.failed == 1
    assert chart.mean_ms == (100 * 4 + 300 * 2) / 6
    assert "5 succeeded, 1 failed" in chart.summary
    empty = build_chart([], now=NOW, label="https://two.example/")
    assert empty.empty and "No attempts" in empty.summary
