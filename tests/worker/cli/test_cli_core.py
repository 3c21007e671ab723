"""The command line's core commands, through the real console entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support.cli import run_cli
from tests.support.services import TEST_KEY, db_schema_of


@pytest.fixture
def cli(migrated: str) -> Any:
    env = {
        "DATABASE_URL": migrated,
        "CATENTIO_DB_SCHEMA": db_schema_of(migrated),
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_LOG_LEVEL": "WARNING",
        "REDIS_URL": "",
    }

    def invoke(*args: str) -> Any:
        return run_cli(env, *args, catch_exceptions=False)

    return invoke


def test_endpoint_add_json_shows_the_secret_once(cli: Any) -> None:
    """`endpoints add --json` prints id and whsec_ secret; listings never show it."""
    added = cli(
        "endpoints",
        "add",
        "--workspace",
        "ws_a",
        "--url",
        "https://r.example/h",
        "--events",
        "run.*",
        "--events",
        "project.paused",
        "--json",
    )
    assert added.exit_code == 0, added.output
    endpoint = json.loads(added.output)
    assert endpoint["id"].startswith("ep_") and endpoint["secret"].startswith("whsec_")
    assert endpoint["event_types"] == ["project.paused", "run.*"]
    listed = cli("endpoints", "list", "--json")
    assert [e["id"] for e in json.loads(listed.output)] == [endpoint["id"]]
    assert endpoint["secret"] not in listed.output
    shown = cli("endpoints", "show", endpoint["id"])
    assert endpoint["id"] in shown.output and endpoint["secret"] not in shown.output


def test_publish_and_inspect(cli: Any) -> None:
    """`events publish` writes an event; `events show`/`deliveries list` read it back."""
    cli("endpoints", "add", "--workspace", "ws_a", "--url", "https://r.example/h", "--events", "*")
    published = cli(
        "events",
        "publish",
        "--workspace",
        "ws_a",
        "--type",
        "run.succeeded",
        "--data",
        '{"runId": "r1"}',
        "--json",
    )
    assert published.exit_code == 0, published.output
    event = json.loads(published.output)
    shown = json.loads(cli("events", "show", event["id"], "--json").output)
    assert shown["data"] == {"runId": "r1"} and shown["deliveries"] == []
    assert json.loads(cli("deliveries", "list", "--json").output) == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            [
                "events",
                "publish",
                "--workspace",
                "ws_a",
                "--type",
                "run.succeeded",
                "--data",
                "{not json",
            ],
            2,
            "not valid JSON",
        ),
        (
            ["events", "publish", "--workspace", "ws_a", "--type", "Run!", "--data", "{}"],
            2,
            "event type",
        ),
        (
            ["endpoints", "add", "--workspace", "ws_a", "--url", "ftp://x/y", "--events", "*"],
            2,
            "http or https",
        ),
        (
            [
                "endpoints",
                "add",
                "--workspace",
                "ws_a",
                "--url",
                "https://u:p@x/y",
                "--events",
                "*",
            ],
            2,
            "credentials",
        ),
        (
            [
                "endpoints",
                "add",
                "--workspace",
                "ws_a",
                "--url",
                "https://x/y",
                "--events",
                "run.**",
            ],
            2,
            "event filter",
        ),
        (
            [
                "endpoints",
                "add",
                "--workspace",
                "ws_a",
                "--url",
                "https://x/y",
                "--events",
                "*",
                "--header",
                "Webhook-Signature: forged",
            ],
            2,
            "cannot be overridden",
        ),
        (["deliveries", "show", "dlv_nope"], 3, "no delivery"),
        (["events", "show", "evt_nope"], 3, "no event"),
        (["endpoints", "show", "ep_nope"], 3, "no endpoint"),
        (["deliveries", "list", "--bogus"], 2, "No such option '--bogus'"),
        (["deliveries", "show"], 2, "Missing argument"),
    ],
)
def test_bad_input_gives_one_clear_line(cli: Any, args: list[str], code: int, message: str) -> None:
    """Bad input or an unknown id: one `error:` line on stderr and a documented code."""
    result = cli(*args)
    assert result.exit_code == code
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr


def test_db_upgrade_accepts_the_platform_postgres_url(postgres_url: str) -> None:
    """`db upgrade` with DATABASE_URL in the postgres:// form that platforms give."""
    url = postgres_url.replace("postgresql://", "postgres://", 1)
    result = run_cli(
        {"DATABASE_URL": url, "CATENTIO_DB_SCHEMA": db_schema_of(url)}, "db", "upgrade"
    )
    assert result.exit_code == 0, result.output
    assert "revision 0001" in result.output or "revision 000" in result.output
    current = run_cli(
        {"DATABASE_URL": url, "CATENTIO_DB_SCHEMA": db_schema_of(url)}, "db", "current"
    )
    head = current.output.split("code: ")[1].strip()
    assert f"database: {head}" in current.output


def test_dead_database_is_one_line_and_exit_1() -> None:
    """An unreachable database: `error: database unavailable …`, exit code 1."""
    env = {
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
    }
    result = run_cli(env, "endpoints", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: database unavailable")


def test_postgres_without_encryption_key_is_refused(postgres_url: str) -> None:
    """Adding an endpoint against PostgreSQL without CATENTIO_ENCRYPTION_KEYS is refused."""
    run_cli(
        {"DATABASE_URL": postgres_url, "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url)},
        "db",
        "upgrade",
    )
    result = run_cli(
        {
            "DATABASE_URL": postgres_url,
            "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url),
            "CATENTIO_ENCRYPTION_KEYS": "",
        },
        *["endpoints", "add", "--workspace", "w", "--url", "https://x/y", "--events", "*"],
    )
    assert result.exit_code == 2 and "CATENTIO_ENCRYPTION_KEYS" in result.stderr


@pytest.mark.slow
def test_demo_passes_through_the_console_script(tmp_path: Any) -> None:
    """`catentio-webhooks demo` on the embedded default exits 0 with every check met."""
    result = subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--events", "12"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo passed" in result.stdout
    assert "every request verified with catentio_signing (" in result.stdout
    assert list(tmp_path.iterdir()) == []  # nothing left in the working directory


def test_operator_disable_tells_the_workspace(cli: Any) -> None:
    """`endpoints disable` publishes webhook.endpoint.disabled with the operator's reason,
    exactly like an automatic disable; disabling again publishes nothing more."""
    added = json.loads(
        cli(
            "endpoints",
            "add",
            "--workspace",
            "ws_a",
            "--url",
            "https://r.example/h?token=t0ps3cret",
            "--events",
            "*",
            "--json",
        ).output
    )
    assert cli("endpoints", "disable", added["id"], "--reason", "maintenance").exit_code == 0
    assert cli("endpoints", "disable", added["id"]).exit_code == 0
    events = json.loads(cli("events", "list", "--type", "webhook.*", "--json").output)
    rows = events["events"] if isinstance(events, dict) else events
    assert [e["type"] for e in rows] == ["webhook.endpoint.disabled"]
    shown = json.loads(cli("events", "show", rows[0]["id"], "--json").output)
    assert shown["data"]["endpointId"] == added["id"]
    assert shown["data"]["reason"] == "maintenance"
    assert "t0ps3cret" not in json.dumps(shown)


def test_update_changes_and_clears_the_limits(cli: Any) -> None:
    """`endpoints update --max-concurrency/--rate-limit` set an endpoint's own limits;
    0 clears them; a negative value is refused."""
    added = json.loads(
        cli(
            "endpoints",
            "add",
            "--workspace",
            "ws_a",
            "--url",
            "https://r.example/h",
            "--events",
            "*",
            "--json",
        ).output
    )
    set_ = cli(
        "endpoints",
        "update",
        added["id"],
        "--max-concurrency",
        "3",
        "--rate-limit",
        "2.5",
        "--json",
    )
    assert set_.exit_code == 0, set_.output
    view = json.loads(set_.output)
    assert (view["max_concurrency"], view["rate_limit"]) == (3, 2.5)
    cleared = json.loads(
        cli(
            "endpoints",
            "update",
            added["id"],
            "--max-concurrency",
            "0",
            "--rate-limit",
            "0",
            "--json",
        ).output
    )
    assert (cleared["max_concurrency"], cleared["rate_limit"]) == (None, None)
    refused = cli("endpoints", "update", added["id"], "--max-concurrency", "-1")
    assert refused.exit_code == 2 and refused.stderr.startswith("error: ")


def test_custom_header_limit_follows_the_setting(migrated: str) -> None:
    """CATENTIO_MAX_HEADER_BYTES bounds an endpoint's custom headers at registration."""
    env = {
        "DATABASE_URL": migrated,
        "CATENTIO_DB_SCHEMA": db_schema_of(migrated),
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_MAX_HEADER_BYTES": "64",
    }
    args = [
        "endpoints",
        "add",
        "--workspace",
        "ws_a",
        "--url",
        "https://r.example/h",
        "--events",
        "*",
        "--header",
    ]
    small = run_cli(env, *args, "X-A: 1")
    big = run_cli(env, *args, "X-A: " + "a" * 100)
    assert small.exit_code == 0, small.output
    assert big.exit_code == 2 and "larger than 64 bytes" in big.stderr


def test_ordering_is_set_at_add_and_changed_by_update(cli: Any) -> None:
    """`endpoints add --ordering fifo` makes an ordered endpoint; `update --ordering
    parallel` lifts it; anything else is refused with exit 2 and nothing changes."""
    added = json.loads(
        cli(
            "endpoints", "add", "--workspace", "ws_a", "--url", "https://r.example/h",
            "--events", "*", "--ordering", "fifo", "--json",
        ).output
    )  # fmt: skip
    assert added["ordering"] == "fifo"
    shown = json.loads(cli("endpoints", "show", added["id"], "--json").output)
    assert shown["ordering"] == "fifo"
    lifted = cli("endpoints", "update", added["id"], "--ordering", "parallel", "--json")
    assert lifted.exit_code == 0, lifted.output
    assert json.loads(lifted.output)["ordering"] == "parallel"
    refused = cli("endpoints", "update", added["id"], "--ordering", "lifo")
    assert refused.exit_code == 2
    assert json.loads(cli("endpoints", "show", added["id"], "--json").output)["ordering"] == (
        "parallel"
    )
    default = json.loads(
        cli(
            "endpoints", "add", "--workspace", "ws_a", "--url", "https://r2.example/h",
            "--events", "*", "--json",
        ).output
    )  # fmt: skip
    assert default["ordering"] == "parallel"
