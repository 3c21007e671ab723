"""The portal as production serves it: real uvicorn serving the API process (the portal
mounted at /portal), real workers, chromium. A link is minted with POST
/v1/portal/links; an operator signs in with an API key."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from outbox.models import Attempt
from outbox.publish import publish
from tests.support.portal import serve_api
from tests.worker.portal.conftest import BrowserPage
from worker.access.keys import create_key, list_keys, revoke_key
from worker.demo.receiver import Receiver, sequence
from worker.endpoints.registry import NewSecret
from worker.portal.access import COOKIE
from worker.portal.login import REFUSED
from worker.runtime import Runtime

pytestmark = pytest.mark.slow


def _key(runtime: Runtime, workspace_id: str | None, scope: str = "write") -> str:
    with runtime.sessions() as session, session.begin():
        return create_key(session, workspace_id=workspace_id, scope=scope).key


def test_a_link_from_the_api_opens_the_portal_and_a_replay_shows_its_attempt(
    backend: dict[str, Any],
    make_runtime: Callable[..., Runtime],
    add_endpoint: Callable[..., NewSecret],
    receiver: Receiver,
    browser: BrowserPage,
) -> None:
    """POST /v1/portal/links → open the link in chromium → the endpoints → the failed
    delivery → replay it (confirming) → its new, successful attempt appears by itself,
    all served by one API process whose workers deliver."""
    runtime = make_runtime(**backend)
    flaky = add_endpoint(
        runtime,
        receiver=receiver,
        path="/flaky",
        event_types=("run.*",),
        behaviour=sequence(500, 500, 500, 500, 200),
    )
    with runtime.sessions() as session, session.begin():
        event = publish(session, workspace_id="ws_a", type="run.failed", data={"run": 9})
    admin = _key(runtime, None)
    page = browser.page
    with runtime.running(), serve_api(runtime) as service:
        assert receiver.wait_for(4, path="/flaky", timeout=20)
        minted = httpx.post(
            f"{service.base_url}/v1/portal/links",
            headers={"Authorization": f"Bearer {admin}", "X-Catentio-Workspace": "ws_a"},
            json={"ttlSeconds": 600},
            timeout=10,
        )
        assert minted.status_code == 201, minted.text
        link = minted.json()["data"]["url"]
        assert link.startswith(f"{service.base_url}/portal/open?token=")

        page.goto(link)
        page.wait_for_url(re.compile(r"/portal/$"))
        assert page.get_by_role("heading", name="Endpoints").is_visible()
        page.get_by_role("link", name=flaky.endpoint.url).click()
        page.wait_for_url(re.compile(r"/portal/endpoints/ep_"))
        page.get_by_role("link", name=re.compile(r"^failed")).first.click()
        page.wait_for_url(re.compile(r"status=failed"))
        rows = page.locator("table.list tbody tr")
        rows.first.get_by_role("link").click()
        page.wait_for_url(re.compile(r"/portal/deliveries/dlv_"))
        delivery_id = page.url.rsplit("/", 1)[-1].split("?")[0]
        assert page.locator("li.attempt").count() == 4

        page.get_by_role("button", name="Replay this delivery").click()
        page.wait_for_url(re.compile(r"notice=replayed"))
        assert browser.dialogs == ["Send this delivery again (same webhook-id)?"]
        page.locator("#attempt-5").wait_for(timeout=20_000)
        assert "replay" in page.locator("#attempt-5 summary").inner_text()
        page.locator("#delivery-live .badge", has_text="succeeded").first.wait_for()
    with runtime.sessions() as session:
        attempts = session.scalars(select(Attempt).where(Attempt.delivery_id == delivery_id))
        assert [a.trigger for a in attempts][-1] == "replay"
    assert {r.headers["webhook-id"] for r in receiver.received("/flaky")} == {event.id}


def test_an_operator_signs_in_with_an_api_key_in_the_browser(
    sqlite_url: str,
    make_runtime: Callable[..., Runtime],
    add_endpoint: Callable[..., NewSecret],
    browser: BrowserPage,
) -> None:
    """The sign-in form by keyboard: a revoked key is refused with the one message and no
    session; an admin key is asked for a workspace, then opens it; a read key's session
    says read-only and offers no actions."""
    runtime = make_runtime(sqlite_url)
    theirs = add_endpoint(runtime, url="https://b.example/hook", workspace_id="ws_b")
    revoked = _key(runtime, "ws_b")
    with runtime.sessions() as session, session.begin():
        (record,) = list_keys(session, workspace_id="ws_b")
        revoke_key(session, record.id)
    admin = _key(runtime, None)
    reader = _key(runtime, "ws_b", scope="read")
    page = browser.page
    with serve_api(runtime) as service:
        page.goto(f"{service.base_url}/portal/")
        assert page.get_by_role("heading", name="Sign in again").is_visible()
        page.get_by_role("link", name="sign in with an API key").click()
        page.wait_for_url(re.compile(r"/portal/login$"))

        page.get_by_label("API key").fill(revoked)
        page.get_by_label("API key").press("Enter")
        page.get_by_role("alert").wait_for()
        assert page.get_by_role("alert").inner_text() == REFUSED
        assert COOKIE not in {c["name"] for c in page.context.cookies()}

        page.get_by_label("API key").fill(admin)
        page.get_by_role("button", name="Sign in").click()
        assert "name the workspace" in page.get_by_role("alert").inner_text()
        page.get_by_label("API key").fill(admin)
        page.get_by_label("Workspace").fill("ws_b")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/portal/$"))
        assert page.get_by_role("link", name=theirs.endpoint.url).is_visible()
        assert page.locator(".workspace").inner_text() == "ws_b"

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r"/portal/signed-out"))
        page.get_by_role("link", name="sign in with an API key").click()
        page.get_by_label("API key").fill(reader)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/portal/$"))
        assert page.locator(".badge.read-only").is_visible()
        page.goto(f"{service.base_url}/portal/endpoints/{theirs.endpoint.id}")
        assert page.get_by_role("button", name="Disable").count() == 0
    assert browser.dialogs == []
