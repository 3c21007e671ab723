"""The shipped Procfile under a Procfile runner: `honcho start` in the project's root,
on a database that was never migrated, keeps every process up and delivers.

honcho (like foreman) starts `release` beside `poller` and `worker`, and stops all of
them as soon as any one exits. So `poller` and `worker` wait (bounded, logged once) for
the schema `release` is creating, and `release` stays up after migrating when a Procfile
runner started it, while a platform's release phase still sees it exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from outbox import publish
from outbox.migrate import current_revision, head_revision
from tests.support.services import TEST_KEY, db_schema_of, engine_for
from worker.demo.receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent


def _wait_for_schema(url: str, timeout: float) -> bool:
    engine = engine_for(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if current_revision(engine) == head_revision():
                    return True
            except Exception:  # the release step may be creating it right now
                pass
            time.sleep(0.2)
        return False
    finally:
        engine.dispose()


def test_honcho_start_keeps_the_procfile_up_and_delivers(
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Receiver,
) -> None:
    """`honcho start` with the shipped Procfile on an empty schema: release migrates,
    poller and worker wait for it, nothing stops the set, and an event is delivered."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "DATABASE_URL": postgres_url,
        "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url),
        "REDIS_URL": redis_server,
        "CATENTIO_REDIS_NAMESPACE": redis_namespace,
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CATENTIO_POLL_INTERVAL": "50ms",
        "CATENTIO_LOG_FORMAT": "json",
        # The web process refuses to start on PostgreSQL without it, and its exit
        # stopped the whole set, in a race with the delivery.
        "CATENTIO_PORTAL_SECRET": "procfile-test-portal-secret-" + "x" * 16,
    }
    # honcho gives each process a PORT, 100 apart in Procfile order: web (the fourth)
    # gets a port that was free a moment ago.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        web_port = probe.getsockname()[1]
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-p", str(web_port - 300)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert _wait_for_schema(postgres_url, timeout=60), "release never migrated"
        runtime = make_runtime(postgres_url)
        add_endpoint(runtime, receiver=receiver, path="/hook")
        with runtime.sessions() as session, session.begin():
            publish(session, workspace_id="ws_a", type="run.succeeded", data={"n": 1})
        delivered = receiver.wait_for(1, path="/hook", timeout=60)
        still_up = honcho.poll() is None
    finally:
        # A set that stopped by itself has no group left: the assertions show its output.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(honcho.pid, signal.SIGTERM)
        try:
            output, _ = honcho.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            output, _ = honcho.communicate()
    assert delivered, output[-4000:]
    assert still_up, output[-4000:]
    assert receiver.received("/hook")[0].verified
    for process in ("release.1", "poller.1", "worker.1"):
        assert f"{process} " in output or f"{process}|" in output, output[-4000:]
    assert '"release.holding"' in output, output[-4000:]


def test_a_release_phase_still_ends(postgres_url: str) -> None:
    """Outside a Procfile runner (a platform's release phase), `db upgrade` migrates
    and exits 0."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": postgres_url,
        "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url),
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
    }
    done = subprocess.run(
        [sys.executable, "-m", "worker", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert _wait_for_schema(postgres_url, timeout=1)
