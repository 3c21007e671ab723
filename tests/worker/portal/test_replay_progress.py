"""Bulk replays started in the portal are the API's recorded runs (``replay_runs``), so
any API process draws their progress bar, not only the one running them."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from outbox.models import Delivery, DeliveryStatus, ReplayRun
from tests.support.api import Api
from tests.support.history import seed_history


def _signed_in(api: Api, workspace: str = "ws_a") -> httpx.Client:
    """A browser-like client holding a portal session of ``api``'s process."""
    admin = api.client(api.key(None), **{"X-Catentio-Workspace": workspace})
    url = admin.post("/v1/portal/links", json={}).json()["data"]["url"]
    client = httpx.Client(base_url=api.base_url, timeout=10)
    assert client.get(url).status_code == 200
    api.clients.append(client)
    return client


def _csrf(client: httpx.Client, path: str) -> str:
    page = client.get(path).text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def _failed(api: Api, endpoint_id: str) -> list[str]:
    with api.sessions() as session:
        return list(
            session.scalars(
                select(Delivery.id).where(
                    Delivery.endpoint_id == endpoint_id,
                    Delivery.status == DeliveryStatus.FAILED,
                )
            )
        )


def test_a_second_api_process_reports_the_progress_of_a_portal_bulk_replay(
    make_api: Any, database_url: str
) -> None:
    """Started from the portal of one API process, the replay's page on another process
    of the same database shows it through to the end, as does the API's replay
    resource; the rows were re-opened and rung once each."""
    first = make_api(database_url)
    second = make_api(database_url)
    history = seed_history(database_url, events=120)
    endpoint_id = history.endpoints["a1"]
    failed = _failed(first, endpoint_id)
    assert len(failed) > 5

    starter = _signed_in(first)
    base = f"/portal/endpoints/{endpoint_id}"
    form = {"csrf_token": _csrf(starter, base), "status_failed": "1", "step": "run"}
    started = starter.post(f"{base}/replay", data=form)
    assert started.status_code == 303
    progress_path = started.headers["location"]
    run_id = progress_path.rsplit("/", 1)[-1]
    assert run_id.startswith("rpl_")

    watcher = _signed_in(second)
    deadline = time.monotonic() + 20
    while "done" not in (page := watcher.get(progress_path)).text:
        assert page.status_code == 200, page.text
        assert time.monotonic() < deadline, page.text
        time.sleep(0.05)
    assert f"{len(failed)} of {len(failed)} looked at, {len(failed)} re-opened" in page.text
    assert 'value="100"' in page.text
    fragment = watcher.get(progress_path, headers={"hx-request": "true"}).text
    assert "<html" not in fragment and "hx-get" not in fragment  # done: polling stops

    reader = second.client(second.key("ws_a", scope="read"))
    run = reader.get(f"/v1/webhooks/{endpoint_id}/replays/{run_id}").json()["data"]
    assert run["status"] == "succeeded" and run["reopened"] == len(failed)
    assert _failed(first, endpoint_id) == []
    assert sorted(first.rung) == sorted(failed) and second.rung == []

    other_workspace = _signed_in(second, "ws_b")
    assert other_workspace.get(progress_path).status_code == 404


def test_a_run_whose_process_died_reads_interrupted(make_api: Any, sqlite_url: str) -> None:
    """A running row nobody has updated for longer than five minutes is shown as
    interrupted, with what to do, and the page stops refreshing."""
    api = make_api(sqlite_url)
    history = seed_history(sqlite_url, events=40)
    endpoint_id = history.endpoints["a1"]
    client = _signed_in(api)
    base = f"/portal/endpoints/{endpoint_id}"
    form = {"csrf_token": _csrf(client, base), "status_failed": "1", "step": "run"}
    progress_path = client.post(f"{base}/replay", data=form).headers["location"]
    run_id = progress_path.rsplit("/", 1)[-1]
    deadline = time.monotonic() + 20
    while "done" not in client.get(progress_path).text:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with api.sessions() as session, session.begin():
        run = session.get(ReplayRun, run_id)
        assert run is not None
        session.execute(
            update(ReplayRun)
            .where(ReplayRun.id == run_id)
            .values(
                status="running",
                finished_at=None,
                processed=run.selected // 2,
                updated_at=run.updated_at - timedelta(minutes=6),
            )
        )
    page = client.get(progress_path).text
    assert "Interrupted" in page and "Start it again" in page
    assert "hx-get" not in page
