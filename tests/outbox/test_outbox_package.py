"""catentio-outbox as a producer installs it: alone, in a fresh virtual environment.

The venv is made without pip (fast), and this interpreter's pip installs ``./outbox``
into it with ``--python``, so the only third-party packages it can hold are the ones the
distribution itself asks for.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from outbox.migrate import upgrade
from tests.support.services import engine_for

ROOT = Path(__file__).resolve().parents[2]
WORKER_STACK = {"dramatiq", "httpx", "httpcore", "redis", "rich", "click", "structlog"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def producer_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh venv holding catentio-outbox and what it depends on."""
    venv = tmp_path_factory.mktemp("producer") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", ROOT / "outbox"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    return python


def test_the_producer_package_installs_without_the_worker_stack(producer_python: Path) -> None:
    """pip list in the producer's venv: catentio-outbox and SQLAlchemy, and none of
    dramatiq, httpx, redis, rich, click or structlog."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", producer_python, "list", "--format=json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"catentio-outbox", "sqlalchemy"} <= names
    assert not names & WORKER_STACK
    assert "catentio-webhooks" not in names


def test_the_producer_package_alone_can_publish(producer_python: Path, tmp_path: Path) -> None:
    """In the producer's venv, bind + publish on its own engine writes an event into a
    database that `db upgrade` made, and imports nothing beyond SQLAlchemy."""
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    engine = engine_for(url)
    upgrade(engine)
    script = textwrap.dedent(
        f"""
        import sys
        already = set(sys.modules)
        import sqlalchemy as sa
        from sqlalchemy.orm import Session
        import outbox
        engine = outbox.bind(sa.create_engine({url!r}))
        with Session(engine) as session, session.begin():
            event_id = outbox.publish(session, workspace_id="ws_1", type="run.succeeded",
                                      data={{"runId": "r_1"}}).id
        top = {{name.partition(".")[0] for name in set(sys.modules) - already}}
        foreign = top - set(sys.stdlib_module_names) - {{"outbox", "sqlalchemy"}}
        print(event_id)
        print(",".join(sorted(n for n in foreign if not n.startswith("_"))))
        """
    )
    ran = subprocess.run(
        [producer_python, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the repository, whose outbox/ folder is not the package
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    event_id, foreign = ran.stdout.splitlines()
    # SQLAlchemy's own: its typing backport, greenlet, and the module Cython creates.
    assert set(filter(None, foreign.split(","))) <= {
        "typing_extensions",
        "greenlet",
        "cython_runtime",
    }
    with engine.connect() as connection:
        table = "catentio_webhooks_events"
        stored = connection.execute(sa.text(f"SELECT id, type FROM {table}")).all()
    engine.dispose()
    assert stored == [(event_id, "run.succeeded")]
