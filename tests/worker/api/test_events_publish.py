"""``POST /v1/events``: publishing over HTTP, with outbox.publish's rules."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from outbox.models import Event
from tests.support.api import Api, assert_error


def count_events(api: Api) -> int:
    with api.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Event)) or 0)


def test_publish_answers_201_with_the_stored_event(api: Api) -> None:
    """The event is in the outbox with the body rendered once, the request id inside."""
    client = api.as_workspace()
    response = client.post(
        "/v1/events",
        json={"type": "run.succeeded", "data": {"runId": "r1", "n": 2}},
        headers={"X-Request-Id": "trace-9"},
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["id"].startswith("evt_")
    assert data["type"] == "run.succeeded"
    assert data["workspaceId"] == "ws_a"
    assert data["data"] == {"runId": "r1", "n": 2}
    assert data["dispatchedAt"] is None
    with api.sessions() as session:
        event = session.get(Event, data["id"])
        assert event is not None
        body = json.loads(event.body)
    assert body["data"]["data"] == {"runId": "r1", "n": 2}
    assert body["meta"]["requestId"] == "trace-9"


def test_bad_events_are_refused_and_nothing_is_written(api: Api) -> None:
    """A bad type, non-object data, unknown fields and an oversized body are refused."""
    client = api.as_workspace()
    error = assert_error(
        client.post("/v1/events", json={"type": "Bad Type", "data": {}}), 422, "VALIDATION_ERROR"
    )
    assert error["field"] == "type"
    error = assert_error(
        client.post("/v1/events", json={"type": "run.ok", "data": [1]}), 422, "VALIDATION_ERROR"
    )
    assert error["field"] == "data"
    assert_error(
        client.post("/v1/events", json={"type": "run.ok", "data": {}, "x": 1}),
        422,
        "VALIDATION_ERROR",
    )
    limit = api.settings.max_body_bytes
    big = {"type": "run.ok", "data": {"blob": "x" * (limit - 100)}}
    error = assert_error(client.post("/v1/events", json=big), 413, "PAYLOAD_TOO_LARGE")
    assert error["field"] == "data"
    assert count_events(api) == 0


def test_idempotency_key_is_the_events_key(api: Api) -> None:
    """Publishing twice with one Idempotency-Key stores one event and answers the same."""
    client = api.as_workspace()
    body = {"type": "run.succeeded", "data": {"runId": "r1"}}
    first = client.post("/v1/events", json=body, headers={"Idempotency-Key": "run-r1"})
    second = client.post("/v1/events", json=body, headers={"Idempotency-Key": "run-r1"})
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert second.headers["idempotent-replayed"] == "true"
    assert count_events(api) == 1
    with api.sessions() as session:
        event = session.scalars(select(Event)).one()
    assert event.idempotency_key == "run-r1"
