"""The on-call terminal: tables readable at 80 columns, paging endpoints, publishing
big bodies from a file or stdin, refusing unreachable endpoint addresses up front, and
the smaller things that sent people the wrong way."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select, update

from outbox.clock import utcnow
from outbox.database import make_engine, make_session_factory
from outbox.migrate import upgrade
from outbox.models import Delivery, Endpoint, Event
from tests.support.cli import cli_env, run_cli
from tests.support.history import History, seed_history

WIDTHS = (80, 120)


@pytest.fixture
def small_history(sqlite_url: str) -> History:
    """A short seeded history on SQLite (enough rows for one page)."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    engine.dispose()
    return seed_history(sqlite_url, events=12)


def _table(history: History, width: int, *args: str) -> str:
    result = run_cli(cli_env(history.url, COLUMNS=str(width)), *args)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("width", WIDTHS)
def test_listings_fit_the_terminal_with_ids_and_statuses_whole(
    small_history: History, width: int
) -> None:
    """At 80 and 120 columns every line of `deliveries list`, `endpoints list` and
    `events list` fits, and every id and status is printed whole (never `succee…`)."""
    deliveries = _table(small_history, width, "deliveries", "list")
    endpoints = _table(small_history, width, "endpoints", "list")
    events = _table(small_history, width, "events", "list")
    for output in (deliveries, endpoints, events):
        assert max(len(line) for line in output.splitlines()) <= width, output
        assert "…" not in output, output
    for delivery in small_history.deliveries:
        assert delivery["id"] in deliveries
        row = next(line for line in deliveries.splitlines() if delivery["id"] in line)
        assert re.search(rf"\b{delivery['status']}\b", row), row
    for endpoint_id in small_history.endpoints.values():
        row = next(line for line in endpoints.splitlines() if endpoint_id in line)
        assert re.search(r"\benabled\b", row), row
    for event in small_history.events:
        assert event["id"] in events


def test_wider_terminals_show_more_columns(small_history: History) -> None:
    """What 80 columns leave out, 120 columns show; and the table says what it left
    out and that --json has it."""
    narrow = _table(small_history, 80, "deliveries", "list")
    wide = _table(small_history, 120, "deliveries", "list")
    assert "not shown at this width" in narrow and "--json" in narrow
    assert "endpoint_id" not in narrow.split("not shown")[0]
    assert "endpoint_id" in wide.split("not shown")[0]
    assert "event_type" in narrow  # the event type stays at 80
    endpoint_id = small_history.deliveries[0]["endpoint_id"]
    assert endpoint_id in wide


def test_endpoints_list_pages_and_streams(small_history: History) -> None:
    """`endpoints list` has --limit/--after (newest first, keyset) and --jsonl."""
    env = cli_env(small_history.url)
    everything = sorted(small_history.endpoints.values(), reverse=True)
    first = run_cli(env, "endpoints", "list", "--limit", "2", "--json")
    assert first.exit_code == 0, first.output
    page = [row["id"] for row in json.loads(first.stdout)]
    assert page == everything[:2]
    rest = run_cli(env, "endpoints", "list", "--limit", "2", "--after", page[-1], "--json")
    assert [row["id"] for row in json.loads(rest.stdout)] == everything[2:]
    streamed = run_cli(env, "endpoints", "list", "--jsonl")
    lines = streamed.stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == everything
    table = run_cli(env, "endpoints", "list", "--limit", "1")
    assert f"more: --after {everything[0]}" in table.stdout
    bad = run_cli(env, "endpoints", "list", "--after", "nonsense")
    assert bad.exit_code == 2 and "next_cursor" not in bad.stderr
    assert "more: --after" in bad.stderr


def test_the_after_error_names_what_the_output_shows(small_history: History) -> None:
    """A bad --after points at the `more: --after …` line, not a next_cursor no table
    prints."""
    result = run_cli(cli_env(small_history.url), "deliveries", "list", "--after", "evt_x")
    assert result.exit_code == 2
    assert "next_cursor" not in result.stderr and "more: --after" in result.stderr


def _published(url: str) -> list[Event]:
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        rows = list(session.scalars(select(Event).where(Event.type == "big.body")))
    engine.dispose()
    return rows


def test_publish_reads_data_from_a_file_or_stdin(small_history: History, tmp_path: Path) -> None:
    """`--data @file` and `--data -` publish bodies past the OS argument limit
    (~128 KiB) up to the 256 KiB body limit; a larger one is refused, nothing written."""
    env = cli_env(small_history.url)
    data = {"blob": "x" * (200 * 1024)}
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    common = ["events", "publish", "--workspace", "ws_a", "--type", "big.body"]
    from_file = run_cli(env, *common, "--data", f"@{path}")
    assert from_file.exit_code == 0, from_file.output
    from_stdin = run_cli(env, *common, "--data", "-", input=json.dumps({"n": 1}))
    assert from_stdin.exit_code == 0, from_stdin.output
    bodies = [json.loads(e.body)["data"]["data"] for e in _published(small_history.url)]
    assert sorted(bodies, key=lambda b: len(json.dumps(b))) == [{"n": 1}, data]
    path.write_text(json.dumps({"blob": "x" * (600 * 1024)}))
    too_big = run_cli(env, *common, "--data", f"@{path}")
    assert too_big.exit_code == 2 and too_big.stderr.startswith("error: ")
    missing = run_cli(env, *common, "--data", f"@{tmp_path / 'nope.json'}")
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    assert len(_published(small_history.url)) == 2


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/hook",
        "http://api.localhost:8080/hook",
        "http://10.0.0.5/hook",
        "http://127.1:9000/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest",
        "https://[fd00::5]/hook",
    ],
)
def test_literal_non_public_addresses_are_refused_at_registration(
    small_history: History, url: str
) -> None:
    """`endpoints add` and `endpoints update --url` refuse a host that is a literal
    private/loopback/metadata address (or localhost) and say CATENTIO_ALLOWED_NETWORKS
    opens it, instead of failing later as blocked_address."""
    env = cli_env(small_history.url, CATENTIO_ALLOWED_NETWORKS="")
    added = run_cli(env, "endpoints", "add", "--workspace", "ws_a", "--url", url, "--events", "*")
    assert added.exit_code == 2, added.output
    assert "CATENTIO_ALLOWED_NETWORKS" in added.stderr
    assert len(added.stderr.strip().splitlines()) == 1
    endpoint_id = small_history.endpoints["a1"]
    updated = run_cli(env, "endpoints", "update", endpoint_id, "--url", url)
    assert updated.exit_code == 2 and "CATENTIO_ALLOWED_NETWORKS" in updated.stderr


def test_allowed_networks_open_registration_and_names_are_left_to_the_guard(
    small_history: History,
) -> None:
    """Covered by CATENTIO_ALLOWED_NETWORKS, a loopback URL registers; a host name is
    not resolved at registration (the send-time guard checks what it connects to)."""
    env = cli_env(small_history.url, CATENTIO_ALLOWED_NETWORKS="127.0.0.0/8,::1/128")
    for url in ("http://localhost:9000/hook", "http://127.0.0.1:9000/hook"):
        added = run_cli(
            env, "endpoints", "add", "--workspace", "ws_a", "--url", url, "--events", "*"
        )
        assert added.exit_code == 0, added.output
    named = run_cli(
        cli_env(small_history.url, CATENTIO_ALLOWED_NETWORKS=""),
        "endpoints", "add", "--workspace", "ws_a", "--url", "https://hooks.example.com/x",
        "--events", "*",
    )  # fmt: skip
    assert named.exit_code == 0, named.output


def test_stats_says_since_when(small_history: History) -> None:
    """`stats` shows since when its window counts, and since when each failing
    endpoint has been failing, formatted like the other times."""
    engine = make_engine(small_history.url)
    since = utcnow().replace(microsecond=0)
    with make_session_factory(engine)() as session, session.begin():
        session.execute(
            update(Endpoint)
            .where(Endpoint.id == small_history.endpoints["a1"])
            .values(failing_since=since, consecutive_failures=3)
        )
    engine.dispose()
    result = run_cli(cli_env(small_history.url), "stats", "--window", "1d")
    assert result.exit_code == 0, result.output
    assert "is since" in result.stdout
    assert "failing since" in result.stdout
    assert since.strftime("%Y-%m-%d %H:%M:%S") in result.stdout
    shown = run_cli(cli_env(small_history.url), "endpoints", "show", small_history.endpoints["a1"])
    assert since.strftime("%Y-%m-%d %H:%M:%S") in shown.stdout
    assert since.isoformat()[:19] not in shown.stdout  # no raw ISO beside the others


def test_dry_run_last_column_matches_deliveries_list(small_history: History) -> None:
    """The replay dry-run's `last` shows the error kind (connect) when there was no
    status, as `deliveries list` does, not `-`."""
    failed = small_history.select(endpoint_id=small_history.endpoints["a1"], status="failed")
    engine = make_engine(small_history.url)
    with make_session_factory(engine)() as session, session.begin():
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_([d["id"] for d in failed]))
            .values(last_status_code=None, last_error_kind="connect")
        )
    engine.dispose()
    env = cli_env(small_history.url)
    dry = run_cli(
        env, "replay", "--endpoint", small_history.endpoints["a1"], "--status", "failed",
        "--dry-run",
    )  # fmt: skip
    assert dry.exit_code == 0, dry.output
    rows = [line for line in dry.stdout.splitlines() if failed[0]["id"] in line]
    assert rows and "connect" in rows[0]


def test_a_failing_first_command_leaves_no_files(tmp_path: Path) -> None:
    """In an empty folder, a first command that fails creates neither the SQLite file
    nor its key file."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        env = {"REDIS_URL": "", "DATABASE_URL": "", "CATENTIO_LOG_LEVEL": "ERROR"}
        shown = run_cli(env, "deliveries", "show", "dlv_nope")
        assert shown.exit_code == 3
        added = run_cli(
            env, "endpoints", "add", "--workspace", "ws_a", "--url", "http://localhost/x",
            "--events", "*",
        )  # fmt: skip
        assert added.exit_code == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == []
        listed = run_cli(env, "deliveries", "list")  # a command that works keeps them
        assert listed.exit_code == 0
        assert "catentio-webhooks.sqlite3" in {p.name for p in tmp_path.iterdir()}
    finally:
        os.chdir(cwd)
