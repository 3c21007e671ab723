"""docs/examples/publish-from-node.mjs, run with Node and the `pg` driver.

`pg` is installed from the npm registry into a temporary directory once per session (CI
runs on a clean clone, and vendoring a driver's node_modules into the repository would
be thousands of lines of someone else's code). Without node or npm the tests skip on a
developer machine and fail under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from outbox.migrate import upgrade
from outbox.models import Event
from tests.support.services import db_schema_of, engine_for, service_missing
from worker.demo.receiver import Receiver
from worker.runtime import Runtime

pytestmark = pytest.mark.postgres

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "publish-from-node.mjs"
PG_VERSION = "pg@8"


@pytest.fixture(scope="session")
def node_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with `pg` installed and a copy of the example script."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        service_missing("node and npm", FileNotFoundError("not on PATH"))
    project = tmp_path_factory.mktemp("node-producer")
    try:
        subprocess.run(
            [npm, "install", PG_VERSION, "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=project,
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        service_missing("npm registry", exc)
    # ES modules resolve packages from the script's own directory, so the script sits
    # next to node_modules, byte for byte the file in docs/examples.
    shutil.copy(EXAMPLE, project / EXAMPLE.name)
    return project


def run_example(project: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url.split("?")[0].replace("postgresql+psycopg://", "postgres://"),
        "CATENTIO_DB_SCHEMA": db_schema_of(database_url),
    }
    return subprocess.run(
        ["node", EXAMPLE.name, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_node_script_publishes_in_a_transaction_and_the_event_is_delivered(
    node_project: Path,
    postgres_url: str,
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
) -> None:
    """The Node example commits an event that is delivered and verified; run with
    --rollback it leaves no event behind and nothing is sent."""
    engine = engine_for(postgres_url)
    upgrade(engine)
    engine.dispose()
    runtime = make_runtime(postgres_url)
    add_endpoint(runtime, receiver=receiver)

    rolled = run_example(node_project, postgres_url, "ws_a", "run.failed", "{}", "--rollback")
    committed = run_example(node_project, postgres_url, "ws_a", "run.succeeded", '{"runId":"r_1"}')

    assert rolled.returncode == 0, rolled.stderr
    assert committed.returncode == 0, committed.stderr
    rolled_id = json.loads(rolled.stdout)["eventId"]
    event_id = json.loads(committed.stdout)["eventId"]
    with runtime.running():
        assert receiver.wait_for(1, timeout=20)
    (got,) = receiver.received()
    assert got.verified
    assert got.headers["webhook-id"] == event_id
    assert json.loads(got.body)["data"] == {
        **json.loads(got.body)["data"],
        "id": event_id,
        "type": "run.succeeded",
        "workspaceId": "ws_a",
        "data": {"runId": "r_1"},
    }
    with runtime.sessions() as session:
        assert session.get(Event, rolled_id) is None


def test_node_script_reports_bad_input_with_its_sqlstate(
    node_project: Path, postgres_url: str
) -> None:
    """Data that is not a JSON object comes back to Node as SQLSTATE 22W03."""
    engine = engine_for(postgres_url)
    upgrade(engine)
    engine.dispose()
    result = run_example(node_project, postgres_url, "ws_a", "run.succeeded", "[1, 2]")
    assert result.returncode == 1
    assert "22W03 data must be a JSON object, not array" in result.stderr
