"""The API process serves the portal at /portal, and ``POST /v1/portal/links`` mints its
links: an admin key, ``X-Catentio-Workspace``, ``ttlSeconds``, ``readOnly``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.api import Api, assert_error
from tests.support.cli import cli_env, run_cli
from tests.support.services import fast_settings
from worker.api.server import build_context
from worker.errors import ConfigurationError
from worker.portal.access import COOKIE

LINKS = "/v1/portal/links"


def _admin(api: Api, workspace: str = "ws_a", **headers: str) -> httpx.Client:
    return api.client(api.key(None), **{"X-Catentio-Workspace": workspace, **headers})


def _mint(api: Api, body: dict[str, Any] | None = None, workspace: str = "ws_a") -> Any:
    response = _admin(api, workspace).post(LINKS, json=body or {})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_minted_link_opens_the_portal_served_by_the_api_process(api: Api) -> None:
    """The link names this server, opens a session for its workspace only, and the
    portal's pages come from the same process as the API, without the API's rate-limit
    headers (the API's budget is not the portal's)."""
    endpoint_id = api.endpoint("ws_a", url="https://a.example/hook")
    api.endpoint("ws_b", url="https://b.example/hook")
    before = datetime.now(UTC)
    body = _mint(api, {"ttlSeconds": 900})
    link = body["data"]
    assert body["error"] is None and body["meta"]["requestId"].startswith("req_")
    assert link["workspaceId"] == "ws_a" and link["readOnly"] is False
    assert link["url"].startswith(f"{api.base_url}/portal/open?token=")
    expires = datetime.fromisoformat(link["expiresAt"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=890) < expires <= before + timedelta(seconds=910)

    with httpx.Client(timeout=10) as browser:
        opened = browser.get(link["url"])
        assert opened.status_code == 200
        assert COOKIE in opened.cookies
        assert "x-ratelimit-limit" not in opened.headers
        assert "default-src 'none'" in opened.headers["content-security-policy"]
        page = browser.get(f"{api.base_url}/portal/")
        assert page.status_code == 200
        assert "https://a.example/hook" in page.text and endpoint_id in page.text
        assert "https://b.example/hook" not in page.text
        assert "x-ratelimit-limit" not in page.headers
    api_answer = api.as_workspace("ws_a").get("/v1/webhooks")
    assert api_answer.status_code == 200 and "x-ratelimit-limit" in api_answer.headers


def test_a_read_only_link_opens_a_session_that_cannot_act(sqlite_api: Api) -> None:
    """``readOnly`` true: the portal shows the endpoint and refuses its switches."""
    endpoint_id = sqlite_api.endpoint("ws_a")
    link = _mint(sqlite_api, {"readOnly": True})["data"]
    assert link["readOnly"] is True
    with httpx.Client(base_url=sqlite_api.base_url, timeout=10) as browser:
        assert browser.get(link["url"]).status_code == 200
        page = browser.get(f"/portal/endpoints/{endpoint_id}")
        assert page.status_code == 200 and "read-only" in page.text.lower()
        refused = browser.post(f"/portal/endpoints/{endpoint_id}/disable", data={"csrf_token": "x"})
        assert refused.status_code == 403
    detail = sqlite_api.as_workspace("ws_a").get(f"/v1/webhooks/{endpoint_id}").json()
    assert detail["data"]["state"] == "enabled"


def test_without_a_ttl_the_link_lives_the_configured_default(
    make_api: Any, sqlite_url: str
) -> None:
    """No ``ttlSeconds``: ``CATENTIO_PORTAL_LINK_TTL``."""
    api = make_api(sqlite_url, portal_link_ttl=timedelta(hours=2))
    before = datetime.now(UTC)
    response = _admin(api).post(LINKS)
    assert response.status_code == 201, response.text
    expires = datetime.fromisoformat(response.json()["data"]["expiresAt"].replace("Z", "+00:00"))
    assert before + timedelta(minutes=119) < expires <= before + timedelta(minutes=121)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"ttlSeconds": 7 * 86400 + 1}, "ttlSeconds", "604800"),
        ({"ttlSeconds": 0}, "ttlSeconds", "greater than or equal to 1"),
        ({"ttlSeconds": -60}, "ttlSeconds", "greater than or equal to 1"),
        ({"ttlSeconds": "3600"}, "ttlSeconds", "integer"),
        ({"readOnly": "yes"}, "readOnly", "boolean"),
        ({"ttl": 3600}, "ttl", "unknown field 'ttl'"),
    ],
)
def test_bad_input_is_one_validation_error_naming_the_field(
    sqlite_api: Api, body: dict[str, Any], field: str, words: str
) -> None:
    """Over seven days, zero, negative, a string, an unknown field: 422 naming it."""
    error = assert_error(_admin(sqlite_api).post(LINKS, json=body), 422, "VALIDATION_ERROR")
    assert error["field"] == field
    assert words in str(error["message"])


def test_only_an_admin_key_with_the_write_scope_mints_links(sqlite_api: Api) -> None:
    """A workspace's own key (even for its own workspace) and a read-only admin key are
    403; no key is 401; an admin key naming no workspace is 422 on the header."""
    own = sqlite_api.as_workspace("ws_a")
    error = assert_error(own.post(LINKS, json={}), 403, "FORBIDDEN")
    assert "all-workspaces" in str(error["message"])
    own_named = sqlite_api.client(sqlite_api.key("ws_a"), **{"X-Catentio-Workspace": "ws_a"})
    assert_error(own_named.post(LINKS, json={}), 403, "FORBIDDEN")
    read_admin = sqlite_api.client(
        sqlite_api.key(None, scope="read"), **{"X-Catentio-Workspace": "ws_a"}
    )
    assert_error(read_admin.post(LINKS, json={}), 403, "FORBIDDEN")
    assert_error(sqlite_api.client().post(LINKS, json={}), 401, "UNAUTHENTICATED")
    unnamed = sqlite_api.client(sqlite_api.key(None))
    error = assert_error(unnamed.post(LINKS, json={}), 422, "VALIDATION_ERROR")
    assert error["field"] == "X-Catentio-Workspace"
    bad = _admin(sqlite_api, "not ok!")
    assert_error(bad.post(LINKS, json={}), 422, "VALIDATION_ERROR")


def test_an_idempotency_key_answers_the_same_link_again(sqlite_api: Api) -> None:
    """The same key and body: the same bytes (the same link); another body: 422."""
    client = _admin(sqlite_api, **{"Idempotency-Key": "link-1"})
    first = client.post(LINKS, json={"ttlSeconds": 600})
    second = client.post(LINKS, json={"ttlSeconds": 600})
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert_error(client.post(LINKS, json={"ttlSeconds": 60}), 422, "IDEMPOTENCY_KEY_REUSED")


def test_a_link_of_another_secret_is_refused_by_the_mounted_portal(
    make_api: Any, sqlite_url: str
) -> None:
    """Two API processes with different portal secrets do not accept each other's links."""
    one = make_api(sqlite_url, portal_secrets=("a" * 40,))
    other = make_api(sqlite_url, portal_secrets=("b" * 40,))
    link = _mint(one)["data"]["url"]
    path = link.split("/portal/", 1)[1]
    refused = httpx.get(f"{other.base_url}/portal/{path}", timeout=10)
    assert refused.status_code == 403 and COOKIE not in refused.cookies


def test_postgresql_without_a_portal_secret_refuses_to_start(postgres_url: str) -> None:
    """The API (and ``run``) name the missing variable before opening anything; the
    command line says it in one line and exits 2."""
    settings = fast_settings(postgres_url, portal_secrets=())
    with pytest.raises(ConfigurationError, match="CATENTIO_PORTAL_SECRET is required"):
        build_context(settings)
    env = cli_env(postgres_url, CATENTIO_PORTAL_SECRET="")
    for args in (("api", "--port", "0"), ("run", "--api-port", "0")):
        result = run_cli(env, *args)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: CATENTIO_PORTAL_SECRET is required")
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_short_portal_secret_refuses_to_start(sqlite_url: str) -> None:
    """A secret shorter than 32 characters signs every session: refused by name."""
    with pytest.raises(ConfigurationError, match="at least 32"):
        build_context(fast_settings(sqlite_url, portal_secrets=("short",)))
