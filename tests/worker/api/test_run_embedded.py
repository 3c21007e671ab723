"""`catentio-webhooks run` serves the API too: the single-process mode is complete."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

from outbox.migrate import upgrade
from tests.support.api import listening_port, spawn_logged
from tests.support.services import TEST_KEY, db_schema_of, engine_for
from tests.support.waiting import wait_until
from worker.access.keys import create_key
from worker.demo.receiver import Receiver
from worker.portal.keys import key_file_for


def test_run_serves_the_api_and_delivers_what_it_publishes(
    sqlite_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    """Through `run`'s API, as a new user: register an endpoint, publish, see it delivered
    in the history, replay it (the receiver gets the same webhook-id again)."""
    engine = engine_for(sqlite_url)
    upgrade(engine)
    with Session(engine) as session, session.begin():
        key = create_key(session, workspace_id="ws_a").key
    engine.dispose()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": sqlite_url,
        "CATENTIO_DB_SCHEMA": db_schema_of(sqlite_url),
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CATENTIO_POLL_INTERVAL": "50ms",
        "CATENTIO_LOG_FORMAT": "json",
        "CATENTIO_RUN_API_PORT": "0",
    }
    log = tmp_path / "run.log"
    process = spawn_logged(["run", "--threads", "2"], env, log)
    try:
        port = listening_port(process, log)
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
    assert process.returncode == 0


def test_run_serves_the_portal_with_its_generated_secret(sqlite_url: str, tmp_path: Path) -> None:
    """Embedded `run` without CATENTIO_PORTAL_SECRET writes `<database>.portal-key` (0600)
    and serves the portal at /portal: a link minted by its API opens a session there."""
    engine = engine_for(sqlite_url)
    upgrade(engine)
    with Session(engine) as session, session.begin():
        admin = create_key(session, workspace_id=None).key
    engine.dispose()
    key_file = key_file_for(sqlite_url)
    assert key_file is not None and not key_file.exists()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": sqlite_url,
        "CATENTIO_DB_SCHEMA": db_schema_of(sqlite_url),
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_LOG_FORMAT": "json",
        "CATENTIO_RUN_API_PORT": "0",
        "CATENTIO_PORTAL_URL": "https://hooks.example.com",
    }
    log = tmp_path / "run.log"
    process = spawn_logged(["run", "--threads", "1"], env, log)
    try:
        base = f"http://127.0.0.1:{listening_port(process, log)}"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        minted = httpx.post(
            f"{base}/v1/portal/links",
            headers={"Authorization": f"Bearer {admin}", "X-Catentio-Workspace": "ws_a"},
            json={"readOnly": True},
            timeout=10,
        )
        assert minted.status_code == 201, minted.text
        url = minted.json()["data"]["url"]
        assert url.startswith("https://hooks.example.com/portal/open?token=")
        with httpx.Client(base_url=base, timeout=10) as browser:
            assert browser.get(url.removeprefix("https://hooks.example.com")).status_code == 200
            page = browser.get("/portal/")
            assert page.status_code == 200 and "ws_a" in page.text and "read-only" in page.text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0
