"""``Idempotency-Key``: the same write twice does its work once."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from outbox.models import Endpoint, IdempotencyRecord
from tests.support.api import Api, assert_error

NEW = {"url": "https://example.com/hooks", "eventTypes": ["*"]}


def count_endpoints(api: Api) -> int:
    with api.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Endpoint)) or 0)


def test_repeat_returns_the_same_response_without_doing_it_again(api: Api) -> None:
    """Same key, same body: identical status and body (the same secret), one endpoint."""
    client = api.as_workspace()
    first = client.post("/v1/webhooks", json=NEW, headers={"Idempotency-Key": "k1"})
    second = client.post("/v1/webhooks", json=NEW, headers={"Idempotency-Key": "k1"})
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert count_endpoints(api) == 1


def test_a_kept_answer_is_not_stored_in_clear_text(api: Api) -> None:
    """Creating an endpoint answers with its new secret: the kept copy of that answer
    is encrypted in the database (as the endpoint's own secret is), yet the repeat
    still gets it back byte for byte."""
    client = api.as_workspace()
    first = client.post("/v1/webhooks", json=NEW, headers={"Idempotency-Key": "secret"})
    secret = first.json()["data"]["secret"]
    assert secret.startswith("whsec_")
    with api.sessions() as session:
        stored = session.scalars(select(IdempotencyRecord.response_body)).one()
    assert stored is not None
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
    assert "example.com" not in stored  # nothing of the answer shows
    again = client.post("/v1/webhooks", json=NEW, headers={"Idempotency-Key": "secret"})
    assert again.content == first.content


def test_same_key_with_another_body_is_refused(api: Api) -> None:
    """Same key, different body: 422 IDEMPOTENCY_KEY_REUSED, nothing more written."""
    client = api.as_workspace()
    client.post("/v1/webhooks", json=NEW, headers={"Idempotency-Key": "k1"})
    other = {**NEW, "url": "https://example.com/other"}
    response = client.post("/v1/webhooks", json=other, headers={"Idempotency-Key": "k1"})
    error = assert_error(response, 422, "IDEMPOTENCY_KEY_REUSED")
    assert error["field"] == "Idempotency-Key"
    assert count_endpoints(api) == 1


def test_keys_are_per_workspace(api: Api) -> None:
    """The same key in two workspaces is two requests."""
    for workspace in ("ws_a", "ws_b"):
        response = api.as_workspace(workspace).post(
            "/v1/webhooks", json=NEW, headers={"Idempotency-Key": "shared"}
        )
        assert response.status_code == 201
    assert count_endpoints(api) == 2


def test_errors_are_kept_too(sqlite_api: Api) -> None:
    """A refused request is answered the same way again (a 4xx is stored)."""
    client = sqlite_api.as_workspace()
    endpoint_id = sqlite_api.endpoint()
    client.post(f"/v1/webhooks/{endpoint_id}/disable")
    # Replaying a delivery of a disabled endpoint is a CONFLICT; deleting is allowed, so
    # use an update that fails validation.
    path = f"/v1/webhooks/{endpoint_id}"
    first = client.patch(path, json={"url": "nope"}, headers={"Idempotency-Key": "bad"})
    second = client.patch(path, json={"url": "nope"}, headers={"Idempotency-Key": "bad"})
    assert first.status_code == second.status_code == 422
    assert first.content == second.content


def test_in_flight_key_is_a_conflict(sqlite_api: Api) -> None:
    """While a request with the key is in flight, another answers 409 CONFLICT."""
    client = sqlite_api.as_workspace()
    store = sqlite_api.service.context.idempotency
    from worker.api.idempotency import IdempotentRequest, request_hash

    body = b'{"url":"https://example.com/hooks","eventTypes":["*"]}'
    digest = request_hash("POST", "/v1/webhooks", "", body)
    assert (
        store.begin(
            "ws_a", IdempotentRequest("busy", digest), now=sqlite_api.service.context.clock()
        )
        is None
    )
    response = client.post(
        "/v1/webhooks",
        content=body,
        headers={"Idempotency-Key": "busy", "Content-Type": "application/json"},
    )
    assert_error(response, 409, "CONFLICT")
    assert count_endpoints(sqlite_api) == 0


def test_concurrent_duplicates_have_one_effect(api: Api) -> None:
    """Eight simultaneous requests with one key: one endpoint; every 201 is the same."""
    key = api.key("ws_a")
    results: list[httpx.Response] = []
    barrier = threading.Barrier(8)

    def send() -> None:
        with httpx.Client(base_url=api.base_url, timeout=20) as client:
            barrier.wait()
            results.append(
                client.post(
                    "/v1/webhooks",
                    json=NEW,
                    headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "race"},
                )
            )

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count_endpoints(api) == 1
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {201, 409}, statuses
    created = {r.content for r in results if r.status_code == 201}
    assert len(created) == 1


def test_expired_records_are_pruned(sqlite_api: Api) -> None:
    """After the TTL a record is pruned, and the key can be used for a new request."""
    client = sqlite_api.as_workspace()
    client.post("/v1/webhooks", json=NEW, headers={"Idempotency-Key": "old"})
    context = sqlite_api.service.context
    later = context.clock() + sqlite_api.settings.idempotency_ttl + timedelta(seconds=1)
    assert context.idempotency.prune(now=later) == 1
    with sqlite_api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
    other = {**NEW, "url": "https://example.com/later"}
    response = client.post("/v1/webhooks", json=other, headers={"Idempotency-Key": "old"})
    assert response.status_code == 201
