"""`catentio-webhooks check`: one line per check, exit 0 only when all pass."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet

from outbox.migrate import upgrade
from tests.support.cli import cli_env, run_cli
from tests.support.services import db_schema_of, engine_for


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def lines_of(output: str) -> dict[str, tuple[str, str]]:
    checks = {}
    for line in output.strip().splitlines():
        verdict, name, detail = line.split(None, 2)
        checks[name] = (verdict, detail)
    return checks


def test_all_pass_on_a_working_installation(
    database_url: str, make_runtime: Any, add_endpoint: Any, redis_server: str
) -> None:
    """Migrated database, reachable Redis, keys that open a stored secret: four ok lines
    and exit 0 (on SQLite and on PostgreSQL)."""
    add_endpoint(make_runtime(database_url), url="https://example.com/hook")
    result = run_cli(cli_env(database_url, REDIS_URL=redis_server), "check")
    assert result.exit_code == 0, result.output
    checks = lines_of(result.output)
    assert list(checks) == ["database", "migrations", "broker", "encryption_keys"]
    assert all(verdict == "ok" for verdict, _ in checks.values())
    assert "1 of 1 endpoints" in checks["encryption_keys"][1]
    assert checks["broker"][1] == "reachable (redis)"


def test_database_down_fails_fast_with_one_line_each(tmp_path: Path) -> None:
    """A PostgreSQL that refuses connections: database FAIL, the checks that need it say
    so, exit 1, JSON on request, no traceback."""
    url = f"postgresql://postgres@127.0.0.1:{unused_port()}/test"
    result = run_cli(cli_env(url), "check", "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    by_name = {c["check"]: c for c in report["checks"]}
    assert by_name["database"]["ok"] is False
    assert by_name["database"]["detail"].startswith("unreachable: ")
    assert "refused" in by_name["database"]["detail"].lower()
    assert by_name["migrations"]["detail"] == "not checked: the database is unreachable"
    assert by_name["broker"]["ok"] is True  # embedded: no REDIS_URL
    assert by_name["encryption_keys"]["ok"] is False


def test_broker_down_fails(migrated: str) -> None:
    """A Redis that refuses connections fails the broker check only."""
    result = run_cli(cli_env(migrated, REDIS_URL=f"redis://127.0.0.1:{unused_port()}/0"), "check")
    assert result.exit_code == 1
    checks = lines_of(result.output)
    assert checks["broker"][0] == "FAIL" and checks["broker"][1].startswith("unreachable")
    assert checks["database"][0] == checks["migrations"][0] == "ok"


def test_schema_behind_head_fails(database_url: str) -> None:
    """An unmigrated database: migrations FAIL naming the fix."""
    engine_for(database_url).dispose()
    if database_url.startswith("sqlite"):
        Path(database_url.removeprefix("sqlite:///")).touch()
    result = run_cli(cli_env(database_url), "check")
    assert result.exit_code == 1
    checks = lines_of(result.output)
    assert checks["database"][0] == "ok"
    assert checks["migrations"][0] == "FAIL"
    assert "catentio-webhooks db upgrade" in checks["migrations"][1]


def test_wrong_key_fails_naming_the_variable(
    database_url: str, make_runtime: Any, add_endpoint: Any
) -> None:
    """A well-formed key that did not encrypt the stored secrets fails the key check."""
    created = add_endpoint(make_runtime(database_url), url="https://example.com/hook")
    other_key = Fernet.generate_key().decode()
    result = run_cli(cli_env(database_url, CATENTIO_ENCRYPTION_KEYS=other_key), "check")
    assert result.exit_code == 1
    verdict, detail = lines_of(result.output)["encryption_keys"]
    assert verdict == "FAIL"
    assert "CATENTIO_ENCRYPTION_KEYS" in detail and created.endpoint.id in detail
    assert "whsec_" not in result.output


def test_checking_an_empty_folder_creates_nothing(tmp_path: Path) -> None:
    """Embedded, before the first run: check fails and writes no SQLite or key file."""
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    env = cli_env(url)
    del env["CATENTIO_ENCRYPTION_KEYS"]
    result = run_cli(env, "check")
    assert result.exit_code == 1
    assert lines_of(result.output)["database"][0] == "FAIL"
    assert list(tmp_path.iterdir()) == []


def test_embedded_without_key_file_opens_no_secret(sqlite_url: str) -> None:
    """Stored secrets but the embedded key file gone: the keys check fails, and still
    no key file is written."""
    engine = engine_for(sqlite_url)
    upgrade(engine)
    engine.dispose()
    env = cli_env(sqlite_url)
    del env["CATENTIO_ENCRYPTION_KEYS"]
    assert run_cli(env, "check").exit_code == 0  # no endpoints: nothing to open
    assert not Path(sqlite_url.removeprefix("sqlite:///") + ".key").exists()


def test_a_revision_this_code_does_not_know_is_named(postgres_url: str) -> None:
    """Our version table at a revision no catentio-webhooks release has (newer code, or
    another application's table): the same one-line verdict as at start-up, exit 1."""
    engine = engine_for(postgres_url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text(f'UPDATE "{db_schema_of(postgres_url)}".alembic_version SET version_num = :v'),
            {"v": "3f2a9c0d1e7b"},
        )
    engine.dispose()
    result = run_cli(cli_env(postgres_url), "check")
    assert result.exit_code == 1, result.output
    verdict, detail = lines_of(result.output)["migrations"]
    assert verdict == "FAIL"
    assert "'3f2a9c0d1e7b'" in detail and "not a catentio-webhooks migration" in detail
