"""``/v1/webhooks/{id}/deliveries``, replays and ``/v1/events`` over a seeded history."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from outbox import ids
from outbox.clock import utcnow
from outbox.envelope import render
from outbox.models import Delivery, Event
from tests.support.api import Api, assert_error
from tests.support.history import SECRET, History, seed_history
from tests.support.waiting import wait_until


@pytest.fixture
def seeded(api: Api) -> tuple[Api, History]:
    """The API over 400 seeded events (about 700 deliveries)."""
    return api, seed_history(api.settings.database_url, events=400)


def pages(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every row of a list, following nextCursor."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = dict(params)
        if cursor:
            query["cursor"] = cursor
        body = client.get(path, params=query).json()
        rows.extend(body["data"])
        cursor = body["meta"]["page"]["nextCursor"]
        if cursor is None:
            return rows


def test_list_filters_match_the_seed(seeded: tuple[Api, History]) -> None:
    """status, type and since select exactly the seeded rows, newest first."""
    api, history = seeded
    a1 = history.endpoints["a1"]
    client = api.as_workspace("ws_a")
    path = f"/v1/webhooks/{a1}/deliveries"
    everything = pages(client, path, limit=250)
    assert [d["id"] for d in everything] == [d["id"] for d in history.select(endpoint_id=a1)]
    failed = pages(client, path, status="failed", limit=100)
    assert [d["id"] for d in failed] == [
        d["id"] for d in history.select(endpoint_id=a1, status="failed")
    ]
    both = pages(client, path, status=["failed", "skipped"], type="run.*")
    expected = history.select(
        endpoint_id=a1, status=("failed", "skipped"), event_type=("run.succeeded", "run.failed")
    )
    assert [d["id"] for d in both] == [d["id"] for d in expected]
    since = history.now - timedelta(hours=3)
    recent = pages(client, path, since=since.isoformat())
    assert {d["id"] for d in recent} == {
        d["id"] for d in history.select(endpoint_id=a1) if d["created_at"] >= since
    }
    first = client.get(path, params={"limit": 2}).json()
    assert first["meta"]["page"] == {
        "limit": 2,
        "hasMore": True,
        "nextCursor": first["meta"]["page"]["nextCursor"],
    }


def test_cursor_is_tied_to_its_filters(seeded: tuple[Api, History]) -> None:
    """A cursor reused with other filters, or forged, is a VALIDATION_ERROR on cursor."""
    api, history = seeded
    client = api.as_workspace("ws_a")
    path = f"/v1/webhooks/{history.endpoints['a1']}/deliveries"
    cursor = client.get(path, params={"limit": 5}).json()["meta"]["page"]["nextCursor"]
    error = assert_error(
        client.get(path, params={"limit": 5, "cursor": cursor, "status": "failed"}),
        422,
        "VALIDATION_ERROR",
    )
    assert error["field"] == "cursor"
    other = f"/v1/webhooks/{history.endpoints['a2']}/deliveries"
    assert_error(client.get(other, params={"cursor": cursor}), 422, "VALIDATION_ERROR")
    error = assert_error(client.get(path, params={"status": "lost"}), 422, "VALIDATION_ERROR")
    assert error["field"] == "status.0"
    error = assert_error(client.get(path, params={"since": "yesterday"}), 422, "VALIDATION_ERROR")
    assert error["field"] == "since"


def test_detail_has_every_attempt_without_secrets(seeded: tuple[Api, History]) -> None:
    """A failed delivery shows both attempts, as stored, and no secret anywhere."""
    api, history = seeded
    a1 = history.endpoints["a1"]
    failed = history.select(endpoint_id=a1, status="failed")[0]
    response = api.as_workspace("ws_a").get(f"/v1/webhooks/{a1}/deliveries/{failed['id']}")
    data = response.json()["data"]
    assert data["status"] == "failed"
    assert [a["number"] for a in data["attemptHistory"]] == [1, 2]
    first, second = data["attemptHistory"]
    assert first["responseStatus"] == 500
    assert first["responseBody"] == "answer 500"
    assert second["errorKind"] == "timeout"
    assert first["requestHeaders"]["webhook-id"] == failed["event_id"]
    assert SECRET not in response.text and "do-not-print" not in response.text


def test_replay_one_reopens_the_same_row(seeded: tuple[Api, History]) -> None:
    """Replaying a failed delivery re-opens it (pending, rung); again: nothing more."""
    api, history = seeded
    a1 = history.endpoints["a1"]
    failed = history.select(endpoint_id=a1, status="failed")[0]["id"]
    client = api.as_workspace("ws_a")
    path = f"/v1/webhooks/{a1}/deliveries/{failed}/replay"
    first = client.post(path).json()["data"]
    assert first["reopened"] is True
    assert first["delivery"]["id"] == failed
    assert first["delivery"]["status"] == "pending"
    assert api.rung == [failed]
    again = client.post(path).json()["data"]
    assert again["reopened"] is False
    assert api.rung == [failed]
    client.post(f"/v1/webhooks/{a1}/disable")
    succeeded = history.select(endpoint_id=a1, status="succeeded")[0]["id"]
    response = client.post(f"/v1/webhooks/{a1}/deliveries/{succeeded}/replay")
    assert "disabled" in str(assert_error(response, 409, "CONFLICT")["message"])


def test_bulk_replay_runs_in_the_background(seeded: tuple[Api, History]) -> None:
    """dryRun counts; the real run answers 202 and its progress reaches succeeded with
    every selected delivery re-opened."""
    api, history = seeded
    a1 = history.endpoints["a1"]
    client = api.as_workspace("ws_a")
    expected = history.select(endpoint_id=a1, status=("failed", "skipped"))
    preview = client.post(f"/v1/webhooks/{a1}/replay", json={"dryRun": True})
    assert preview.status_code == 200
    assert preview.json()["data"]["selected"] == len(expected)
    with api.sessions() as session:
        statuses = set(session.scalars(select(Delivery.status).where(Delivery.endpoint_id == a1)))
    assert "failed" in statuses
    started = client.post(f"/v1/webhooks/{a1}/replay", json={})
    assert started.status_code == 202, started.text
    run = started.json()["data"]
    assert run["id"].startswith("rpl_")
    assert run["selected"] == len(expected)
    path = f"/v1/webhooks/{a1}/replays/{run['id']}"
    assert wait_until(lambda: client.get(path).json()["data"]["status"] == "succeeded")
    done = client.get(path).json()["data"]
    assert done["reopened"] == done["processed"] == len(expected)
    assert done["finishedAt"] is not None
    assert sorted(api.rung) == sorted(d["id"] for d in expected)
    with api.sessions() as session:
        reopened = session.scalars(
            select(Delivery.status).where(Delivery.id.in_([d["id"] for d in expected]))
        ).all()
    assert set(reopened) == {"pending"}


def test_bulk_replay_bad_input(seeded: tuple[Api, History]) -> None:
    """A pending status, an unknown field and a window that ends first are refused."""
    api, history = seeded
    client = api.as_workspace("ws_a")
    path = f"/v1/webhooks/{history.endpoints['a1']}/replay"
    assert_error(client.post(path, json={"status": ["pending"]}), 422, "VALIDATION_ERROR")
    assert_error(client.post(path, json={"everything": True}), 422, "VALIDATION_ERROR")
    window = {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    assert_error(client.post(path, json=window), 422, "VALIDATION_ERROR")
    assert api.rung == []


def test_another_workspace_sees_none_of_it(seeded: tuple[Api, History]) -> None:
    """A ws_b key gets 404 for ws_a's deliveries, replays and events, and changes nothing."""
    api, history = seeded
    a1 = history.endpoints["a1"]
    failed = history.select(endpoint_id=a1, status="failed")[0]["id"]
    event_a = next(e for e in history.events if e["workspace_id"] == "ws_a")["id"]
    run = api.as_workspace("ws_a").post(f"/v1/webhooks/{a1}/replay", json={"dryRun": True})
    assert run.status_code == 200
    intruder = api.as_workspace("ws_b")
    b1 = history.endpoints["b1"]
    b_delivery = history.select(endpoint_id=b1)[0]["id"]
    responses = [
        intruder.get(f"/v1/webhooks/{a1}/deliveries"),
        intruder.get(f"/v1/webhooks/{a1}/deliveries/{failed}"),
        intruder.post(f"/v1/webhooks/{a1}/deliveries/{failed}/replay"),
        intruder.post(f"/v1/webhooks/{a1}/replay", json={}),
        intruder.get(f"/v1/webhooks/{a1}/replays/rpl_00000000000000000000000000"),
        # Its own endpoint with someone else's delivery id: still not found.
        intruder.get(f"/v1/webhooks/{b1}/deliveries/{failed}"),
        intruder.post(f"/v1/webhooks/{b1}/deliveries/{failed}/replay"),
        intruder.get(f"/v1/events/{event_a}"),
    ]
    for response in responses:
        assert_error(response, 404, "NOT_FOUND")
    assert intruder.get(f"/v1/webhooks/{b1}/deliveries/{b_delivery}").status_code == 200
    assert all(e["workspaceId"] == "ws_b" for e in pages(intruder, "/v1/events", limit=250))
    with api.sessions() as session:
        row = session.get(Delivery, failed)
        assert row is not None and row.status == "failed"
    assert api.rung == []


def test_events_feed_and_fan_out(seeded: tuple[Api, History]) -> None:
    """GET /v1/events lists the workspace's events with type filters; one event shows its
    fan-out to both ws_a endpoints."""
    api, history = seeded
    client = api.as_workspace("ws_a")
    feed = pages(client, "/v1/events", limit=250)
    mine = sorted((e for e in history.events if e["workspace_id"] == "ws_a"), key=lambda e: e["id"])
    assert [e["id"] for e in feed] == [e["id"] for e in reversed(mine)]
    paused = pages(client, "/v1/events", type="project.*", limit=250)
    assert paused and all(e["type"] == "project.paused" for e in paused)
    event = feed[0]
    seeded_body = next(e for e in history.events if e["id"] == event["id"])["body"]
    assert event["data"] == json.loads(seeded_body)["data"]["data"]
    detail = client.get(f"/v1/events/{event['id']}").json()["data"]
    assert {d["endpointId"] for d in detail["deliveries"]} == {
        history.endpoints["a1"],
        history.endpoints["a2"],
    }


def test_pagination_is_stable_under_concurrent_inserts(api: Api) -> None:
    """Paging 1,500 deliveries 97 at a time while new ones are inserted: every original
    row exactly once, in order, none of the new ones in between."""
    history = seed_history(api.settings.database_url, events=2000)
    a1 = history.endpoints["a1"]
    original = [d["id"] for d in history.select(endpoint_id=a1)]
    assert len(original) == 1500
    client = api.as_workspace("ws_a")
    path = f"/v1/webhooks/{a1}/deliveries"
    first = client.get(path, params={"limit": 97}).json()
    stop = threading.Event()
    inserted: list[str] = []

    def insert_more() -> None:
        while not stop.is_set():
            now = utcnow()
            event_id = ids.new_id(ids.EVENT)
            with api.sessions() as session, session.begin():
                session.execute(
                    insert(Event),
                    {
                        "id": event_id,
                        "workspace_id": "ws_a",
                        "type": "run.succeeded",
                        "body": render(
                            event_id=event_id,
                            event_type="run.succeeded",
                            workspace_id="ws_a",
                            created_at=now,
                            data={},
                            request_id=None,
                        ),
                        "created_at": now,
                        "dispatched_at": now,
                    },
                )
                delivery_id = ids.new_id(ids.DELIVERY)
                session.execute(
                    insert(Delivery),
                    {
                        "id": delivery_id,
                        "event_id": event_id,
                        "endpoint_id": a1,
                        "workspace_id": "ws_a",
                        "event_type": "run.succeeded",
                        "status": "succeeded",
                        "attempt_count": 1,
                        "cycle_attempts": 1,
                        "next_trigger": "scheduled",
                        "created_at": now,
                        "updated_at": now,
                    },
                )
            inserted.append(delivery_id)
            time.sleep(0.005)

    writer = threading.Thread(target=insert_more)
    writer.start()
    try:
        seen = [d["id"] for d in first["data"]]
        cursor = first["meta"]["page"]["nextCursor"]
        while cursor:
            body = client.get(path, params={"limit": 97, "cursor": cursor}).json()
            seen.extend(d["id"] for d in body["data"])
            cursor = body["meta"]["page"]["nextCursor"]
    finally:
        stop.set()
        writer.join()
    assert inserted, "the writer inserted nothing while the pages were read"
    assert seen == original
