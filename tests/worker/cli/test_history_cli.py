"""Inspecting a long history from the command line: filters, pages, JSON, health, stats.

Every test runs on SQLite and on PostgreSQL against a seeded history of about 2,600
deliveries spread over five days, and checks the CLI's answer against what was seeded.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from outbox import ids
from outbox.clock import utcnow
from outbox.database import make_engine, make_session_factory
from outbox.models import Delivery, Event
from tests.support.cli import Invoke
from tests.support.history import SECRET, History


def _pages(cli: Invoke, *args: str, limit: int) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: list[str] = []
    while True:
        result = cli("deliveries", "list", *args, "--limit", str(limit), "--json", *cursor)
        assert result.exit_code == 0, result.output
        page = json.loads(result.stdout)
        pages.append(page)
        if len(page) < limit:
            return pages
        cursor = ["--after", page[-1]["id"]]


def test_filtered_history_pages_through_every_match_once(history: History, cli: Invoke) -> None:
    """Keyset pages of an endpoint's failed deliveries, newest first, together hold
    exactly the seeded matches, each once."""
    a1 = history.endpoints["a1"]
    expected = [d["id"] for d in history.select(endpoint_id=a1, status="failed")]
    assert len(expected) > 200
    pages = _pages(cli, "--endpoint", a1, "--status", "failed", limit=37)
    got = [row["id"] for page in pages for row in page]
    assert got == expected
    assert len(pages) == len(expected) // 37 + 1
    assert {row["status"] for page in pages for row in page} == {"failed"}


def test_time_window_type_and_workspace_filters(history: History, cli: Invoke) -> None:
    """--since/--until select by creation time; --type takes prefixes; filters combine."""
    # Seeded deliveries lie 2.5 minutes off the five-minute marks before history.now;
    # the bounds do not, so the seconds the test takes cannot move a row across them.
    since = history.now - timedelta(days=2, minutes=5)
    until = history.now - timedelta(days=1, minutes=5)
    expected = [
        d["id"]
        for d in history.select(workspace_id="ws_a", status=("failed", "skipped"))
        if since <= d["created_at"] < until and d["event_type"].startswith("run.")
    ]
    assert expected
    result = cli(
        "deliveries",
        "list",
        "--workspace",
        "ws_a",
        "--status",
        "failed,skipped",
        "--type",
        "run.*",
        "--since",
        "2d5m",
        "--until",
        until.isoformat().replace("+00:00", "Z"),
        "--limit",
        "1000",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in json.loads(result.stdout)] == expected

    exact = cli("deliveries", "list", "--type", "project.paused", "--limit", "10000", "--jsonl")
    rows = [json.loads(line) for line in exact.stdout.splitlines()]
    assert len(rows) == len(history.select(event_type="project.paused"))
    assert {r["event_type"] for r in rows} == {"project.paused"}


def test_jsonl_streams_the_same_rows_as_json_pages(history: History, cli: Invoke) -> None:
    """--jsonl streams every row, in batches, as the same objects --json pages hold."""
    streamed = cli("deliveries", "list", "--limit", "100000", "--jsonl")
    assert streamed.exit_code == 0, streamed.output
    lines = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert len(lines) == len(history.deliveries)
    assert [r["id"] for r in lines] == [d["id"] for d in history.select()]
    first_page = json.loads(cli("deliveries", "list", "--limit", "25", "--json").stdout)
    assert lines[:25] == first_page


def test_table_output_names_the_next_cursor(history: History, cli: Invoke) -> None:
    """People get a table and the --after value of the next page."""
    newest = history.select(endpoint_id=history.endpoints["b1"])
    result = cli("deliveries", "list", "--endpoint", history.endpoints["b1"], "--limit", "3")
    assert result.exit_code == 0, result.output
    assert all(d["id"] in result.stdout for d in newest[:3]), result.stdout
    assert newest[3]["id"] not in result.stdout
    assert f"more: --after {newest[2]['id']}" in result.stdout


def test_show_prints_every_attempt_and_never_a_secret(history: History, cli: Invoke) -> None:
    """`deliveries show` gives each attempt's time, duration, status, error kind, request
    and response headers and body; neither form shows a secret."""
    failed = history.select(status="failed")[0]
    as_json = cli("deliveries", "show", failed["id"], "--json")
    assert as_json.exit_code == 0, as_json.output
    view = json.loads(as_json.stdout)
    attempts = view["attempt_history"]
    assert [(a["number"], a["response_status"], a["error_kind"]) for a in attempts] == [
        (1, 500, "status"),
        (2, None, "timeout"),
    ]
    assert attempts[0]["request_headers"]["webhook-id"] == failed["event_id"]
    assert attempts[0]["response_body"] == "answer 500" and attempts[0]["duration_ms"] > 0
    table = cli("deliveries", "show", failed["id"])
    assert "answer 500" in table.stdout and "webhook-signature" in table.stdout
    for output in (as_json.stdout, table.stdout):
        assert SECRET not in output and "do-not-print" not in output


def test_events_list_and_show_carry_the_fanout(history: History, cli: Invoke) -> None:
    """`events list` sums each event's deliveries by status; `events show` names the
    endpoints and their statuses."""
    listed = cli("events", "list", "--workspace", "ws_a", "--limit", "40", "--json")
    assert listed.exit_code == 0, listed.output
    for row in json.loads(listed.stdout):
        seeded = [d for d in history.deliveries if d["event_id"] == row["id"]]
        counts: dict[str, int] = {}
        for d in seeded:
            counts[d["status"]] = counts.get(d["status"], 0) + 1
        assert row["deliveries"] == counts and row["workspace_id"] == "ws_a"
    event = history.events[-2]
    shown = json.loads(cli("events", "show", event["id"], "--json").stdout)
    seeded = sorted(
        (d["endpoint_id"], d["status"]) for d in history.deliveries if d["event_id"] == event["id"]
    )
    assert sorted((d["endpoint_id"], d["status"]) for d in shown["deliveries"]) == seeded
    assert all(d["endpoint_url"].endswith(".example/hook") for d in shown["deliveries"])


def test_stats_reports_lag_backlog_and_failing_endpoints(history: History, cli: Invoke) -> None:
    """`stats` shows the oldest waiting event's age, due and in-flight deliveries, the
    last hour's outcomes and the most failing endpoint."""
    engine = make_engine(history.url)
    created = utcnow() - timedelta(minutes=10)
    with make_session_factory(engine)() as session, session.begin():
        session.add(
            Event(
                id=ids.new_id(ids.EVENT, now_ms=int(created.timestamp() * 1000)),
                workspace_id="ws_a",
                type="run.succeeded",
                body="{}",
                created_at=created,
                dispatched_at=None,
            )
        )
        due = history.select(status="pending")[:4]
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_([d["id"] for d in due]))
            .values(next_attempt_at=utcnow() - timedelta(seconds=5))
        )
    engine.dispose()
    result = cli("stats", "--window", "1d", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert 590 <= stats["outbox"]["oldest_waiting_age_seconds"] <= 700
    assert stats["outbox"]["waiting_events"] == 1
    assert stats["deliveries"]["due_now"] == 4
    day = [
        d
        for d in history.deliveries
        if d["completed_at"] and d["completed_at"] >= utcnow() - timedelta(days=1)
    ]
    assert stats["deliveries"]["finished_in_window"]["failed"] == sum(
        1 for d in day if d["status"] == "failed"
    )
    failing = stats["most_failing_endpoints"]
    assert failing and failing[0]["failed"] >= failing[-1]["failed"] > 0
    table = cli("stats")
    assert "outbox: oldest waiting" in table.stdout and "10m" in table.stdout
