"""Payload filters over the API, the CLI and the fan-out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from outbox.models import Delivery
from outbox.publish import publish
from tests.support.api import Api, assert_error
from worker.fanout.poller import Poller

FAILED_ONLY = {"and": [{"eq": ["status", "failed"]}, {"gte": ["attempt", 2]}]}


def test_filter_is_set_read_changed_and_removed(api: Api) -> None:
    """A filter given at create reads back, PATCH replaces it, null removes it."""
    client = api.as_workspace()
    body = {"url": "https://example.com/h", "eventTypes": ["*"], "filter": FAILED_ONLY}
    created = client.post("/v1/webhooks", json=body).json()["data"]
    assert created["filter"] == FAILED_ONLY
    path = f"/v1/webhooks/{created['id']}"
    changed = client.patch(path, json={"filter": {"exists": "run.id"}}).json()["data"]
    assert changed["filter"] == {"exists": "run.id"}
    assert client.patch(path, json={"filter": None}).json()["data"]["filter"] is None


def test_invalid_filter_is_refused_naming_the_field(api: Api) -> None:
    """An invalid filter is a VALIDATION_ERROR on `filter`, saying where; nothing is written."""
    client = api.as_workspace()
    body = {"url": "https://example.com/h", "eventTypes": ["*"], "filter": {"gt": ["n", "x"]}}
    error = assert_error(client.post("/v1/webhooks", json=body), 422, "VALIDATION_ERROR")
    assert error["field"] == "filter"
    assert "filter.gt" in str(error["message"])
    assert client.get("/v1/webhooks").json()["data"] == []
    endpoint_id = api.endpoint()
    error = assert_error(
        client.patch(f"/v1/webhooks/{endpoint_id}", json={"filter": {"nope": 1}}),
        422,
        "VALIDATION_ERROR",
    )
    assert error["field"] == "filter"
    assert client.get(f"/v1/webhooks/{endpoint_id}").json()["data"]["filter"] is None


def test_fan_out_creates_deliveries_only_for_matching_events(api: Api) -> None:
    """An event the filter rejects creates no delivery to that endpoint; others still get it."""
    filtered = api.endpoint(payload_filter=FAILED_ONLY)
    unfiltered = api.endpoint()
    events: dict[str, dict[str, Any]] = {
        "match": {"status": "failed", "attempt": 3},
        "wrong_status": {"status": "ok", "attempt": 3},
        "too_early": {"status": "failed", "attempt": 1},
        "missing": {},
    }
    ids = {}
    with api.sessions() as session, session.begin():
        for name, data in events.items():
            ids[name] = publish(session, workspace_id="ws_a", type="run.done", data=data).id
    result = Poller(session_factory=api.sessions, dispatch=lambda _ids: None).poll_once()
    assert result.events == 4
    with api.sessions() as session:
        pairs = {(d.event_id, d.endpoint_id) for d in session.scalars(select(Delivery))}
    assert {(ids["match"], filtered)} == {p for p in pairs if p[1] == filtered}
    assert {e for e, ep in pairs if ep == unfiltered} == set(ids.values())
