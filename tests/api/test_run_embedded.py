"""`catentio-webhooks run` serves the API too: the single-process mode is complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
from sqlalchemy.orm import Session

from outbox.database import make_engine
from outbox.migrate import upgrade
from tests.conftest import TEST_KEY
from worker.access.keys import create_key
from worker.demo.receiver import Receiver


def wait_until(condition: Any, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def started_port(process: subprocess.Popen[str], timeout: float = 30) -> int:
    """The port of the process's ``api.started`` log line (then keep draining stderr)."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        try:
            record: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "api.started":
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return int(record["port"])
    raise AssertionError(f"no api.started line (exit {process.poll()})")


def test_run_serves_the_api_and_delivers_what_it_publishes(
    sqlite_url: str, receiver: Receiver
) -> None:
    """Through `run`'s API, as a new user: register an endpoint, publish, see it delivered
    in the history, replay it (the receiver gets the same webhook-id again)."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with Session(engine) as session, session.begin():
        key = create_key(session, workspace_id="ws_a").key
    engine.dispose()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": sqlite_url,
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CATENTIO_POLL_INTERVAL": "50ms",
        "CATENTIO_LOG_FORMAT": "json",
        "CATENTIO_RUN_API_PORT": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", "--threads", "2"],
        env=env,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        port = started_port(process)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ) as client:
            created = client.post(
                "/v1/webhooks", json={"url": receiver.base_url + "/hook", "eventTypes": ["*"]}
            ).json()["data"]
            receiver.route("/hook", secret=created["secret"])
            published = client.post("/v1/events", json={"type": "run.succeeded", "data": {"n": 1}})
            assert published.status_code == 201, published.text
            assert receiver.wait_for(1, path="/hook", timeout=30)
            path = f"/v1/webhooks/{created['id']}/deliveries"
            assert wait_until(lambda: client.get(path).json()["data"][0]["status"] == "succeeded")
            (delivery,) = client.get(path).json()["data"]
            replayed = client.post(f"{path}/{delivery['id']}/replay").json()["data"]
            assert replayed["reopened"] is True
            assert receiver.wait_for(2, path="/hook", timeout=30)
        first, second = receiver.received("/hook")
        assert first.verified and second.verified
        event_id = published.json()["data"]["id"]
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == event_id
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
    assert process.returncode == 0
