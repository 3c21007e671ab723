"""Endpoints from the command line: their health, and disable, enable, pause, resume,
update and delete."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select, update

from outbox.clock import utcnow
from outbox.database import make_engine, make_session_factory
from outbox.models import Delivery
from tests.support.cli import Invoke
from tests.support.history import SECRET, History


def _show(cli: Invoke, endpoint_id: str) -> dict[str, object]:
    result = cli("endpoints", "show", endpoint_id, "--json")
    assert result.exit_code == 0, result.output
    view: dict[str, object] = json.loads(result.stdout)
    return view


def test_disable_and_enable_record_the_reason_and_a_fresh_start(
    history: History, cli: Invoke
) -> None:
    """disable keeps a reason; enable clears it and the failure streak."""
    a1 = history.endpoints["a1"]
    assert cli("endpoints", "disable", a1, "--reason", "planned move").stdout.strip() == (
        f"disabled {a1}"
    )
    view = _show(cli, a1)
    assert view["enabled"] is False and view["disabled_reason"] == "planned move"
    assert view["state"] == "disabled"
    assert "already disabled" in cli("endpoints", "disable", a1).stdout
    enabled = cli("endpoints", "enable", a1, "--no-replay-skipped")
    assert enabled.exit_code == 0 and f"enabled {a1}" in enabled.stdout
    view = _show(cli, a1)
    assert view["enabled"] is True and view["disabled_reason"] is None
    assert view["consecutive_failures"] == 0


def test_pause_holds_and_resume_releases_held_deliveries(history: History, cli: Invoke) -> None:
    """pause marks the endpoint; resume makes the deliveries held by the pause due now."""
    a2 = history.endpoints["a2"]
    assert cli("endpoints", "pause", a2).exit_code == 0
    assert _show(cli, a2)["paused"] is True
    held = [d["id"] for d in history.select(endpoint_id=a2, status="pending")[:5]]
    engine = make_engine(history.url)
    sessions = make_session_factory(engine)
    with sessions() as session, session.begin():
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(held))
            .values(held_by="paused", next_attempt_at=utcnow() + timedelta(minutes=1))
        )
    before = utcnow()
    resumed = cli("endpoints", "resume", a2)
    assert resumed.exit_code == 0, resumed.output
    assert "5 held deliveries released" in resumed.stdout
    assert _show(cli, a2)["paused"] is False
    with sessions() as session:
        rows = list(session.scalars(select(Delivery).where(Delivery.id.in_(held))))
    engine.dispose()
    assert all(before - timedelta(seconds=1) <= d.next_attempt_at <= utcnow() for d in rows)


def test_update_changes_url_filters_and_headers(history: History, cli: Invoke) -> None:
    """update validates and applies a new URL, event filters and custom headers."""
    b1 = history.endpoints["b1"]
    result = cli(
        "endpoints", "update", b1, "--url", "https://b1.example/v2", "--events", "run.*,task.done",
        "--header", "X-Team: ops", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["url"] == "https://b1.example/v2"
    assert view["event_types"] == ["run.*", "task.done"] and view["header_names"] == ["x-team"]
    bad = cli("endpoints", "update", b1, "--url", "ftp://b1.example/")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")
    assert _show(cli, b1)["url"] == "https://b1.example/v2"


def test_delete_is_refused_while_deliveries_are_pending(history: History, cli: Invoke) -> None:
    """delete refuses an endpoint with pending deliveries; --force deletes it with all its
    deliveries and attempts, and nobody else's."""
    b1 = history.endpoints["b1"]
    refused = cli("endpoints", "delete", b1, "--yes")
    pending = len(history.select(endpoint_id=b1, status="pending"))
    assert refused.exit_code == 2
    assert f"has {pending} pending deliveries" in refused.stderr
    forced = cli("endpoints", "delete", b1, "--force", "--yes")
    assert forced.exit_code == 0, forced.output
    mine = len(history.select(endpoint_id=b1))
    assert f"deleted {b1} and {mine} deliveries" in forced.stdout
    engine = make_engine(history.url)
    with make_session_factory(engine)() as session:
        left = session.scalar(select(func.count()).select_from(Delivery))
    engine.dispose()
    assert left == len(history.deliveries) - mine
    assert cli("endpoints", "show", b1).exit_code == 3


def test_endpoint_health_counts_recent_attempts_and_backlog(history: History, cli: Invoke) -> None:
    """`endpoints list/show` give success rates over the last hour and day, pending and
    in-flight counts, and never the secret."""
    a2 = history.endpoints["a2"]
    engine = make_engine(history.url)
    with make_session_factory(engine)() as session, session.begin():
        leased = history.select(endpoint_id=a2, status="pending")[:3]
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_([d["id"] for d in leased]))
            .values(lease_until=utcnow() + timedelta(minutes=5))
        )
    engine.dispose()
    shown = cli("endpoints", "show", a2, "--json")
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.stdout)
    assert view["in_flight"] == 3
    assert view["pending"] == len(history.select(endpoint_id=a2, status="pending"))
    assert view["deliveries"]["failed"] == len(history.select(endpoint_id=a2, status="failed"))
    day = [
        d
        for d in history.select(endpoint_id=a2)
        if d["created_at"] >= history.now - timedelta(days=1)
    ]
    expected_attempts = sum(d["attempt_count"] for d in day)
    assert view["attempts_day"] == expected_attempts
    ok = sum(1 for d in day if d["status"] == "succeeded")
    assert view["success_rate_day"] == round(100.0 * ok / expected_attempts, 1)
    listed = cli("endpoints", "list")
    assert "ok 24h" in listed.stdout and f"{view['success_rate_day']:.1f}%" in listed.stdout
    assert SECRET not in listed.stdout + shown.stdout
