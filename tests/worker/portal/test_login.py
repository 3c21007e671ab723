"""Operators sign in to the portal with an API key: the key decides the workspace and
whether the session may act; bad keys get one answer; the form is CSRF-protected."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.support.api import Api
from worker.access.keys import list_keys, revoke_key
from worker.portal.access import COOKIE
from worker.portal.login import LOGIN_COOKIE, REFUSED


def _form(client: httpx.Client) -> str:
    """Open the sign-in form; its token (the nonce cookie is now in the client)."""
    page = client.get("/portal/login")
    assert page.status_code == 200
    assert LOGIN_COOKIE in client.cookies
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def _log_in(client: httpx.Client, key: str, workspace: str = "") -> httpx.Response:
    token = _form(client)
    return client.post(
        "/portal/login", data={"csrf_token": token, "api_key": key, "workspace": workspace}
    )


@pytest.fixture
def browser(sqlite_api: Api) -> httpx.Client:
    client = httpx.Client(base_url=sqlite_api.base_url, timeout=10)
    sqlite_api.clients.append(client)
    return client


def test_a_workspace_key_opens_its_own_workspace(sqlite_api: Api, browser: httpx.Client) -> None:
    """A write key of ws_a: a session of ws_a that may act; the key is not echoed."""
    mine = sqlite_api.endpoint("ws_a", url="https://a.example/hook")
    sqlite_api.endpoint("ws_b", url="https://b.example/hook")
    key = sqlite_api.key("ws_a")
    answer = _log_in(browser, key)
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/portal/" in cookie
    page = browser.get("/portal/")
    assert page.status_code == 200
    assert "https://a.example/hook" in page.text and "https://b.example/hook" not in page.text
    assert "read-only" not in page.text
    endpoint = browser.get(f"/portal/endpoints/{mine}").text
    assert "Disable" in endpoint
    assert key not in page.text and key not in answer.text


def test_a_read_key_opens_a_read_only_session(sqlite_api: Api, browser: httpx.Client) -> None:
    """A read key: the session sees the endpoint and every action is refused."""
    endpoint_id = sqlite_api.endpoint("ws_a")
    assert _log_in(browser, sqlite_api.key("ws_a", scope="read")).status_code == 303
    page = browser.get(f"/portal/endpoints/{endpoint_id}")
    assert "read-only" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    refused = browser.post(f"/portal/endpoints/{endpoint_id}/pause", data={"csrf_token": token})
    assert refused.status_code == 403 and "read-only" in refused.text


def test_an_admin_key_must_choose_a_workspace(sqlite_api: Api, browser: httpx.Client) -> None:
    """An all-workspaces key without a workspace is asked for one (no session); with one
    it opens that workspace."""
    sqlite_api.endpoint("ws_b", url="https://b.example/hook")
    key = sqlite_api.key(None)
    asked = _log_in(browser, key)
    assert asked.status_code == 400
    assert "name the workspace" in asked.text
    assert COOKIE not in browser.cookies
    assert key not in asked.text  # the key is not echoed back into the form
    opened = _log_in(browser, key, workspace="ws_b")
    assert opened.status_code == 303
    assert "https://b.example/hook" in browser.get("/portal/").text


def test_a_workspace_key_cannot_open_another_workspace(
    sqlite_api: Api, browser: httpx.Client
) -> None:
    """Naming another workspace with a workspace's key is refused; no session."""
    answer = _log_in(browser, sqlite_api.key("ws_a"), workspace="ws_b")
    assert answer.status_code == 403 and "another workspace" in answer.text
    assert COOKIE not in browser.cookies


def test_unknown_revoked_and_mistyped_keys_get_the_same_answer(
    sqlite_api: Api, browser: httpx.Client
) -> None:
    """Whatever is wrong with the key, the page says the same and opens no session."""
    revoked = sqlite_api.key("ws_a")
    with sqlite_api.sessions() as session, session.begin():
        (record,) = list_keys(session, workspace_id="ws_a")
        revoke_key(session, record.id)
    answers = [
        _log_in(browser, key)
        for key in (revoked, "cat_ak_" + "x" * 43, "not a key", "", "cat_ak_" + "y" * 500)
    ]
    assert {a.status_code for a in answers} == {401}
    texts = {re.search(r'role="alert"[^>]*>([^<]+)<', a.text).group(1) for a in answers}  # type: ignore[union-attr]
    assert texts == {REFUSED}
    assert COOKIE not in browser.cookies


def test_revoking_the_key_ends_the_session_it_opened(
    sqlite_api: Api, browser: httpx.Client
) -> None:
    """The session lasts only while its key does: revoked, the next page is 401."""
    key = sqlite_api.key("ws_a")
    assert _log_in(browser, key).status_code == 303
    assert browser.get("/portal/").status_code == 200
    with sqlite_api.sessions() as session, session.begin():
        (record,) = list_keys(session, workspace_id="ws_a")
        revoke_key(session, record.id)
    ended = browser.get("/portal/")
    assert ended.status_code == 401 and "revoked" in ended.text
    assert "/portal/login" in ended.text


@pytest.mark.parametrize(
    "forgery",
    ["no token", "no nonce cookie", "another form's token", "cross-site"],
)
def test_a_forged_sign_in_is_refused(sqlite_api: Api, forgery: str) -> None:
    """Login CSRF: without the form's token, its nonce cookie, with a token of another
    form, or from another site, no session is opened even with a good key."""
    key = sqlite_api.key("ws_a")
    with (
        httpx.Client(base_url=sqlite_api.base_url, timeout=10) as client,
        httpx.Client(base_url=sqlite_api.base_url, timeout=10) as stranger,
    ):
        token = _form(client)
        data: dict[str, Any] = {"csrf_token": token, "api_key": key}
        headers: dict[str, str] = {}
        if forgery == "no token":
            del data["csrf_token"]
        elif forgery == "no nonce cookie":
            client.cookies.delete(LOGIN_COOKIE)
        elif forgery == "another form's token":
            data["csrf_token"] = _form(stranger)
        else:
            headers = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
        answer = client.post("/portal/login", data=data, headers=headers)
        assert answer.status_code == 403
        assert COOKIE not in client.cookies
        assert client.get("/portal/").status_code == 401
