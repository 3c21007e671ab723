"""``/v1/webhooks``: create, change, switch, rotate and delete endpoints over HTTP."""

from __future__ import annotations

from sqlalchemy import func, select

from outbox.models import Endpoint
from tests.support.api import Api, assert_error

NEW = {"url": "https://example.com/hooks", "eventTypes": ["run.*"], "description": "ci"}


def count_endpoints(api: Api) -> int:
    with api.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Endpoint)) or 0)


def test_create_shows_the_secret_once(api: Api) -> None:
    """POST answers 201 with the secret; reading the endpoint again never shows it."""
    client = api.as_workspace()
    response = client.post("/v1/webhooks", json=NEW)
    assert response.status_code == 201, response.text
    created = response.json()["data"]
    assert created["secret"].startswith("whsec_")
    assert created["url"] == NEW["url"]
    assert created["eventTypes"] == ["run.*"]
    assert created["workspaceId"] == "ws_a"
    again = client.get(f"/v1/webhooks/{created['id']}").text
    listed = client.get("/v1/webhooks").text
    assert created["secret"] not in again and "secret" not in again
    assert created["secret"] not in listed


def test_create_v1a_returns_the_public_key(api: Api) -> None:
    """An Ed25519 endpoint's creator gets the receiver's whpk_ public key."""
    response = api.as_workspace().post("/v1/webhooks", json={**NEW, "scheme": "v1a"})
    assert response.json()["data"]["secret"].startswith("whpk_")


def test_bad_input_is_one_clear_error_and_writes_nothing(api: Api) -> None:
    """Bad URL, bad event type, unknown field, malformed JSON, missing field: 422 naming
    the field (or saying what is wrong), and no endpoint was created."""
    client = api.as_workspace()
    cases = [
        ({**NEW, "url": "ftp://example.com/x"}, None),
        ({**NEW, "url": "https://user:pw@example.com/x"}, None),
        ({**NEW, "eventTypes": ["Run Succeeded"]}, None),
        ({**NEW, "colour": "blue"}, "colour"),
        ({"url": NEW["url"]}, "eventTypes"),
        ({**NEW, "maxConcurrency": 0}, "maxConcurrency"),
        ({**NEW, "headers": {"webhook-id": "x"}}, None),
    ]
    for body, field in cases:
        error = assert_error(client.post("/v1/webhooks", json=body), 422, "VALIDATION_ERROR")
        if field is not None:
            assert error["field"] == field, error
    malformed = client.post(
        "/v1/webhooks", content=b'{"url": ', headers={"Content-Type": "application/json"}
    )
    assert "JSON" in str(assert_error(malformed, 422, "VALIDATION_ERROR")["message"])
    assert count_endpoints(api) == 0


def test_oversized_body_is_refused_before_it_is_read(sqlite_api: Api) -> None:
    """A body over the limit answers 413 PAYLOAD_TOO_LARGE and creates nothing."""
    big = {**NEW, "description": "x" * (sqlite_api.settings.max_body_bytes + 20_000)}
    response = sqlite_api.as_workspace().post("/v1/webhooks", json=big)
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert count_endpoints(sqlite_api) == 0


def test_patch_changes_only_the_given_fields(api: Api) -> None:
    """PATCH sets url and limits; null limits restore the defaults; unknown fields refused."""
    client = api.as_workspace()
    created = client.post("/v1/webhooks", json={**NEW, "maxConcurrency": 3}).json()["data"]
    path = f"/v1/webhooks/{created['id']}"
    changed = client.patch(path, json={"url": "https://example.com/new", "rateLimit": 2.5})
    assert changed.status_code == 200, changed.text
    data = changed.json()["data"]
    assert data["url"] == "https://example.com/new"
    assert data["rateLimit"] == 2.5
    assert data["maxConcurrency"] == 3
    assert data["eventTypes"] == ["run.*"]
    cleared = client.patch(path, json={"maxConcurrency": None}).json()["data"]
    assert cleared["maxConcurrency"] is None
    assert_error(client.patch(path, json={"secret": "x"}), 422, "VALIDATION_ERROR")
    error = assert_error(client.patch(path, json={"url": "nope"}), 422, "VALIDATION_ERROR")
    assert client.get(path).json()["data"]["url"] == "https://example.com/new", error


def test_switches_disable_enable_pause_resume(api: Api) -> None:
    """The four switches move the endpoint between enabled, disabled and paused."""
    client = api.as_workspace()
    endpoint_id = api.endpoint()
    base = f"/v1/webhooks/{endpoint_id}"
    disabled = client.post(f"{base}/disable").json()["data"]
    assert disabled["state"] == "disabled"
    assert disabled["disabledReason"]
    assert client.post(f"{base}/enable").json()["data"]["state"] == "enabled"
    assert client.post(f"{base}/pause").json()["data"]["state"] == "paused"
    assert client.post(f"{base}/resume").json()["data"]["state"] == "enabled"


def test_rotate_secret_returns_the_new_secret_once(api: Api) -> None:
    """Rotation answers the new secret; two secrets sign during the grace period."""
    client = api.as_workspace()
    created = client.post("/v1/webhooks", json=NEW).json()["data"]
    path = f"/v1/webhooks/{created['id']}"
    rotated = client.post(f"{path}/rotate-secret", json={"graceSeconds": 3600}).json()["data"]
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != created["secret"]
    assert rotated["activeSecrets"] == 2
    assert rotated["secret"] not in client.get(path).text
    immediate = client.post(f"{path}/rotate-secret", json={"graceSeconds": 0}).json()["data"]
    assert immediate["activeSecrets"] == 1


def test_delete_removes_the_endpoint(api: Api) -> None:
    """DELETE answers what went; the endpoint is gone afterwards."""
    client = api.as_workspace()
    endpoint_id = api.endpoint()
    response = client.delete(f"/v1/webhooks/{endpoint_id}")
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"id": endpoint_id, "deleted": True, "deliveriesDeleted": 0}
    assert_error(client.get(f"/v1/webhooks/{endpoint_id}"), 404, "NOT_FOUND")


def test_another_workspace_cannot_touch_an_endpoint(api: Api) -> None:
    """Every endpoint operation with a workspace-B key on an A endpoint is 404 and
    changes nothing."""
    endpoint_id = api.endpoint("ws_a", url="https://example.com/a")
    with api.sessions() as session:
        before = session.get(Endpoint, endpoint_id)
        assert before is not None
        snapshot = (before.url, before.enabled, before.paused, before.secrets, before.updated_at)
    intruder = api.as_workspace("ws_b")
    base = f"/v1/webhooks/{endpoint_id}"
    attempts = [
        intruder.get(base),
        intruder.patch(base, json={"url": "https://evil.example.com/"}),
        intruder.post(f"{base}/disable"),
        intruder.post(f"{base}/pause"),
        intruder.post(f"{base}/enable"),
        intruder.post(f"{base}/resume"),
        intruder.post(f"{base}/rotate-secret", json={}),
        intruder.delete(base, params={"force": "true"}),
    ]
    for response in attempts:
        assert_error(response, 404, "NOT_FOUND")
    assert intruder.get("/v1/webhooks").json()["data"] == []
    with api.sessions() as session:
        after = session.get(Endpoint, endpoint_id)
        assert after is not None
        assert (after.url, after.enabled, after.paused, after.secrets, after.updated_at) == snapshot


def test_ordering_is_created_read_and_changed(api: Api) -> None:
    """``ordering``: ``parallel`` by default, ``fifo`` on request, changed by PATCH,
    anything else refused (422 naming the field) without a change."""
    client = api.as_workspace()
    plain = client.post("/v1/webhooks", json=NEW).json()["data"]
    assert plain["ordering"] == "parallel"
    created = client.post("/v1/webhooks", json={**NEW, "ordering": "fifo"}).json()["data"]
    assert created["ordering"] == "fifo"
    assert client.get(f"/v1/webhooks/{created['id']}").json()["data"]["ordering"] == "fifo"
    with api.sessions() as session:
        assert session.get_one(Endpoint, created["id"]).ordering == "fifo"
    changed = client.patch(f"/v1/webhooks/{created['id']}", json={"ordering": "parallel"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["ordering"] == "parallel"
    with api.sessions() as session:
        assert session.get_one(Endpoint, created["id"]).ordering is None
    error = assert_error(
        client.patch(f"/v1/webhooks/{created['id']}", json={"ordering": "lifo"}),
        422,
        "VALIDATION_ERROR",
    )
    assert error["field"] == "ordering"
