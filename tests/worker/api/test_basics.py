"""The envelope, request ids, authentication and the first read resource."""

from __future__ import annotations

import re

from tests.support.api import Api, assert_error

REQUEST_ID = re.compile(r"req_[0-9a-z]{26}")


def test_health_needs_no_key_and_names_each_dependency(api: Api) -> None:
    """GET /v1/system/health answers 200 in the envelope with the database and broker state."""
    response = api.client().get("/v1/system/health")
    assert response.status_code == 200
    body = response.json()
    assert body["error"] is None
    assert body["data"]["status"] == "ok"
    assert body["data"]["database"]["ok"] is True
    assert REQUEST_ID.fullmatch(body["meta"]["requestId"])
    assert body["meta"]["timestamp"].endswith("Z")
    assert response.headers["x-request-id"] == body["meta"]["requestId"]


def test_health_is_503_naming_the_broker_when_redis_is_down(make_api, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """A broker that does not answer makes health 503 and says which check failed."""
    api = make_api(sqlite_url, redis_url="redis://127.0.0.1:1/0")
    response = api.client().get("/v1/system/health")
    assert response.status_code == 503
    data = response.json()["data"]
    assert data["status"] == "unavailable"
    assert data["database"]["ok"] is True
    assert data["broker"]["ok"] is False


def test_info_gives_the_version(sqlite_api: Api) -> None:
    """GET /v1/system/info names the product and its version."""
    data = sqlite_api.client().get("/v1/system/info").json()["data"]
    assert data["name"] == "catentio-webhooks"
    assert data["apiVersion"] == "v1"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", data["version"])


def test_incoming_request_id_is_echoed(sqlite_api: Api) -> None:
    """An X-Request-Id is echoed in meta.requestId and in the response header."""
    client = sqlite_api.as_workspace()
    response = client.get("/v1/webhooks", headers={"X-Request-Id": "trace-123"})
    assert response.json()["meta"]["requestId"] == "trace-123"
    assert response.headers["x-request-id"] == "trace-123"


def test_no_key_bad_key_and_revoked_key_are_unauthenticated(sqlite_api: Api) -> None:
    """Missing, malformed, unknown and revoked keys all answer 401 UNAUTHENTICATED."""
    from worker.access.keys import list_keys, revoke_key

    assert_error(sqlite_api.client().get("/v1/webhooks"), 401, "UNAUTHENTICATED")
    assert_error(sqlite_api.client("nope").get("/v1/webhooks"), 401, "UNAUTHENTICATED")
    assert_error(
        sqlite_api.client("cat_ak_" + "x" * 43).get("/v1/webhooks"), 401, "UNAUTHENTICATED"
    )
    key = sqlite_api.key("ws_a")
    client = sqlite_api.client(key)
    assert client.get("/v1/webhooks").status_code == 200
    with sqlite_api.sessions() as session, session.begin():
        revoke_key(session, list_keys(session)[0].id)
    assert_error(client.get("/v1/webhooks"), 401, "UNAUTHENTICATED")


def test_key_is_stored_only_as_a_hash(sqlite_api: Api) -> None:
    """No column of the api_keys table holds the key."""
    from sqlalchemy import text

    key = sqlite_api.key("ws_a")
    with sqlite_api.sessions() as session:
        rows = session.execute(text("SELECT * FROM api_keys")).all()
    assert rows
    assert all(key not in str(value) for row in rows for value in row)


def test_read_key_cannot_write(sqlite_api: Api) -> None:
    """A read-scoped key is refused a write with 403 FORBIDDEN."""
    client = sqlite_api.as_workspace(scope="read")
    endpoint_id = sqlite_api.endpoint()
    assert client.get(f"/v1/webhooks/{endpoint_id}").status_code == 200
    response = client.post(f"/v1/webhooks/{endpoint_id}/disable")
    assert_error(response, 403, "FORBIDDEN")


def test_admin_key_names_the_workspace(sqlite_api: Api) -> None:
    """An all-workspaces key acts for the workspace in X-Catentio-Workspace, and must name one."""
    a = sqlite_api.endpoint("ws_a")
    b = sqlite_api.endpoint("ws_b")
    admin = sqlite_api.key(None)
    for_a = sqlite_api.client(admin, **{"X-Catentio-Workspace": "ws_a"})
    assert [w["id"] for w in for_a.get("/v1/webhooks").json()["data"]] == [a]
    for_b = sqlite_api.client(admin, **{"X-Catentio-Workspace": "ws_b"})
    assert [w["id"] for w in for_b.get("/v1/webhooks").json()["data"]] == [b]
    error = assert_error(sqlite_api.client(admin).get("/v1/webhooks"), 422, "VALIDATION_ERROR")
    assert error["field"] == "X-Catentio-Workspace"


def test_workspace_key_naming_another_workspace_is_forbidden(sqlite_api: Api) -> None:
    """A workspace key that names another workspace is refused."""
    client = sqlite_api.client(sqlite_api.key("ws_a"), **{"X-Catentio-Workspace": "ws_b"})
    assert_error(client.get("/v1/webhooks"), 403, "FORBIDDEN")


def test_get_webhook_and_tenancy(api: Api) -> None:
    """An endpoint reads back without secrets; another workspace's id is 404 like a missing one."""
    mine = api.endpoint("ws_a", url="https://example.com/a", event_types=["run.*"])
    theirs = api.endpoint("ws_b")
    client = api.as_workspace("ws_a")
    data = client.get(f"/v1/webhooks/{mine}").json()["data"]
    assert data["id"] == mine
    assert data["url"] == "https://example.com/a"
    assert data["eventTypes"] == ["run.*"]
    assert data["state"] == "enabled"
    assert data["activeSecrets"] == 1
    assert "secret" not in data and "whsec_" not in str(data)
    missing = assert_error(
        client.get("/v1/webhooks/ep_00000000000000000000000000"), 404, "NOT_FOUND"
    )
    other = assert_error(client.get(f"/v1/webhooks/{theirs}"), 404, "NOT_FOUND")
    assert other["message"].replace(theirs, "ID") == missing["message"].replace(
        "ep_00000000000000000000000000", "ID"
    )


def test_list_webhooks_pages_with_an_opaque_cursor(sqlite_api: Api) -> None:
    """Five endpoints in pages of two: newest first, nothing skipped or repeated."""
    made = [sqlite_api.endpoint("ws_a") for _ in range(5)]
    sqlite_api.endpoint("ws_b")
    client = sqlite_api.as_workspace("ws_a")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/v1/webhooks", params=params).json()
        seen.extend(w["id"] for w in body["data"])
        page = body["meta"]["page"]
        assert page["limit"] == 2
        cursor = page["nextCursor"]
        assert page["hasMore"] is (cursor is not None)
        if cursor is None:
            break
        assert not cursor.startswith("ep_")
    assert seen == sorted(made, reverse=True)


def test_bad_cursor_and_limit_are_validation_errors(sqlite_api: Api) -> None:
    """A cursor not handed out, and a limit over 250, are VALIDATION_ERRORs naming the field."""
    client = sqlite_api.as_workspace()
    error = assert_error(
        client.get("/v1/webhooks", params={"cursor": "garbage!"}), 422, "VALIDATION_ERROR"
    )
    assert error["field"] == "cursor"
    error = assert_error(client.get("/v1/webhooks", params={"limit": 251}), 422, "VALIDATION_ERROR")
    assert error["field"] == "limit"


def test_unknown_route_is_not_found_in_the_envelope(sqlite_api: Api) -> None:
    """An unknown path answers 404 NOT_FOUND in the envelope, with rate-limit headers."""
    response = sqlite_api.client().get("/v1/nothing-here")
    assert_error(response, 404, "NOT_FOUND")
    assert "x-ratelimit-limit" in response.headers
