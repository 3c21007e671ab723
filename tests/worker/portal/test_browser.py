"""The portal in a real browser: Debian's chromium, driven by playwright, against the
portal under uvicorn with the real dramatiq workers and a verifying receiver."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from outbox.models import Attempt, Endpoint
from outbox.publish import publish
from tests.support.clock import ManualClock
from tests.support.portal import PortalServer, serve_api
from tests.worker.portal.conftest import BrowserPage, Seeded
from tests.worker.portal.showcase import seed_showcase
from worker.demo.receiver import Receiver, sequence
from worker.endpoints.registry import NewSecret
from worker.runtime import Runtime

pytestmark = pytest.mark.slow


def _attempt_count(runtime: Runtime, delivery_id: str) -> int:
    with runtime.sessions() as session:
        return len(
            session.scalars(select(Attempt.id).where(Attempt.delivery_id == delivery_id)).all()
        )


def _wait(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_link_endpoints_filter_open_replay_and_the_new_attempt_appears(
    backend: dict[str, Any],
    make_runtime: Callable[..., Runtime],
    add_endpoint: Callable[..., NewSecret],
    receiver: Receiver,
    start_portal: Callable[..., PortalServer],
    browser: BrowserPage,
) -> None:
    """Open a portal link → see the endpoints → filter deliveries to the failed one →
    open it → replay it (confirming) → its new, successful attempt appears by itself."""
    runtime = make_runtime(**backend)
    flaky = add_endpoint(
        runtime,
        receiver=receiver,
        path="/flaky",
        event_types=("run.*",),  # not the webhook.delivery.exhausted notice it causes
        behaviour=sequence(500, 500, 500, 500, 200),
    )
    add_endpoint(runtime, receiver=receiver, path="/fine")
    with runtime.sessions() as session, session.begin():
        event = publish(session, workspace_id="ws_a", type="run.failed", data={"run": 7})
    portal = start_portal(runtime)
    page = browser.page
    with runtime.running():
        assert receiver.wait_for(4, path="/flaky", timeout=20)
        assert receiver.wait_for(1, path="/fine", timeout=20)
        page.goto(portal.link("ws_a"))
        page.wait_for_url(re.compile(r"/portal/$"))
        assert page.get_by_role("heading", name="Endpoints").is_visible()
        assert page.get_by_role("link", name=flaky.endpoint.url).is_visible()

        page.get_by_role("navigation", name="Sections").get_by_role(
            "link", name="Deliveries"
        ).click()
        _wait(lambda: _delivery_failed(runtime, flaky.endpoint.id))
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select')]
                .filter(el => el.labels.length === 0).map(el => el.name)"""
        )
        assert unlabelled == []
        page.get_by_label("Status").select_option("failed")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(r"status=failed"))
        rows = page.locator("table.list tbody tr")
        assert rows.count() == 1
        assert "run.failed" in rows.first.inner_text()

        rows.first.get_by_role("link").click()
        page.wait_for_url(re.compile(r"/portal/deliveries/dlv_"))
        delivery_id = page.url.rsplit("/", 1)[-1].split("?")[0]
        assert page.locator("li.attempt").count() == 4
        assert event.id in page.content()

        # By keyboard, as someone without a mouse would.
        page.get_by_role("button", name="Replay this delivery").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"notice=replayed"))
        assert browser.dialogs == ["Send this delivery again (same webhook-id)?"]
        # The page polls while the delivery is pending; the fifth attempt shows up.
        page.locator("#attempt-5").wait_for(timeout=20_000)
        assert "replay" in page.locator("#attempt-5 summary").inner_text()
        page.locator("#delivery-live .badge", has_text="succeeded").first.wait_for()
    assert _attempt_count(runtime, delivery_id) == 5
    ids = {r.headers["webhook-id"] for r in receiver.received("/flaky")}
    assert ids == {event.id}


def _delivery_failed(runtime: Runtime, endpoint_id: str) -> bool:
    from outbox.models import Delivery, DeliveryStatus

    with runtime.sessions() as session:
        status = session.scalars(
            select(Delivery.status).where(Delivery.endpoint_id == endpoint_id)
        ).first()
    return status == DeliveryStatus.FAILED


def test_expired_and_tampered_links_are_refused_in_the_browser(
    sqlite_url: str,
    make_runtime: Callable[..., Runtime],
    start_portal: Callable[..., PortalServer],
    browser: BrowserPage,
) -> None:
    """Both show a refusal page (403) and leave no session: the portal asks for a link."""
    clock = ManualClock()
    portal = start_portal(make_runtime(sqlite_url, clock=clock))
    expired = portal.link("ws_a", ttl=timedelta(minutes=1))
    good = portal.link("ws_a")
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    clock.advance(timedelta(minutes=2))
    page = browser.page
    for url, words in ((expired, "expired"), (tampered, "not valid")):
        response = page.goto(url)
        assert response is not None and response.status == 403
        assert words in page.locator("main").inner_text()
    response = page.goto(portal.url + "/portal/")
    assert response is not None and response.status == 401
    assert page.context.cookies() == []


def test_a_link_for_workspace_a_cannot_read_workspace_bs_delivery(
    sqlite_url: str,
    make_runtime: Callable[..., Runtime],
    start_portal: Callable[..., PortalServer],
    seed: Callable[[Runtime], Seeded],
    browser: BrowserPage,
) -> None:
    """Typing B's delivery URL into A's session gets the same 404 as a missing id."""
    runtime = make_runtime(sqlite_url)
    seeded = seed(runtime)
    portal = start_portal(runtime)
    page = browser.page
    page.goto(portal.link("ws_a"))
    page.wait_for_url(re.compile(r"/portal/$"))
    response = page.goto(f"{portal.url}/portal/deliveries/{seeded.delivery_b}")
    assert response is not None and response.status == 404
    text = page.locator("main").inner_text()
    assert "Not found" in text and "run.succeeded" not in text
    own = page.goto(f"{portal.url}/portal/deliveries/{seeded.delivery_a}")
    assert own is not None and own.status == 200


def test_a_receivers_script_does_not_run_and_shows_as_text(
    sqlite_url: str,
    make_runtime: Callable[..., Runtime],
    start_portal: Callable[..., PortalServer],
    seed: Callable[[Runtime], Seeded],
    browser: BrowserPage,
) -> None:
    """The hostile response body opens no dialog and reads as its literal text, while
    the portal's own scripts (htmx, portal.js) run under the CSP."""
    runtime = make_runtime(sqlite_url)
    seeded = seed(runtime)
    portal = start_portal(runtime)
    page = browser.page
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content-Security" in m.text else None
    )
    page.goto(portal.link("ws_a"))
    page.wait_for_url(re.compile(r"/portal/$"))
    page.goto(f"{portal.url}/portal/deliveries/{seeded.delivery_a}")
    body = page.locator("#response-4")
    assert body.inner_text().startswith('<script>alert("from the receiver")</script>')
    assert page.locator("script:not([src])").count() == 0
    page.locator("summary").first.hover()
    page.wait_for_timeout(300)
    assert browser.dialogs == []
    assert page.evaluate("typeof window.htmx") == "object"
    assert "<b onmouseover=alert(3)>" in page.locator("main").inner_text()


def test_a_post_without_the_csrf_token_is_refused(
    sqlite_url: str,
    make_runtime: Callable[..., Runtime],
    start_portal: Callable[..., PortalServer],
    seed: Callable[[Runtime], Seeded],
    browser: BrowserPage,
) -> None:
    """A POST from the signed-in page itself, cookie and all but without the token,
    answers 403 and the endpoint stays as it was."""
    runtime = make_runtime(sqlite_url)
    seeded = seed(runtime)
    portal = start_portal(runtime)
    page = browser.page
    page.goto(portal.link("ws_a"))
    page.wait_for_url(re.compile(r"/portal/$"))
    status = page.evaluate(
        """async (path) =>
            (await fetch(path, {method: "POST", body: new URLSearchParams({})})).status""",
        f"/portal/endpoints/{seeded.endpoint_a}/disable",
    )
    assert status == 403
    with runtime.sessions() as session:
        endpoint = session.get(Endpoint, seeded.endpoint_a)
        assert endpoint is not None and endpoint.enabled


@pytest.mark.parametrize("width", [1280, 360])
def test_screenshots_of_endpoints_deliveries_and_one_delivery(
    width: int,
    sqlite_url: str,
    make_runtime: Callable[..., Runtime],
    browser: BrowserPage,
    screenshot_dir: Path,
) -> None:
    """The three main pages (and the sign-in form), served by the API process, render at
    desktop width and at 360 px without sideways scrolling of the page itself;
    screenshots are kept as test artefacts."""
    runtime = make_runtime(sqlite_url)
    endpoint_ids = seed_showcase(runtime)
    with serve_api(runtime) as service:
        portal = PortalServer(service.base_url, runtime, service.context.portal_tokens)
        _shoot_pages(portal, endpoint_ids, width, browser, screenshot_dir)


def _shoot_pages(
    portal: PortalServer,
    endpoint_ids: dict[str, str],
    width: int,
    browser: BrowserPage,
    screenshot_dir: Path,
) -> None:
    page = browser.page
    page.set_viewport_size({"width": width, "height": 900})
    name = "desktop" if width > 400 else "360px"
    page.goto(f"{portal.url}/portal/login")
    _shoot(page, screenshot_dir / f"portal-login-{name}.png", width, min_bytes=5_000)
    page.goto(portal.link("ws_acme"))
    page.wait_for_url(re.compile(r"/portal/$"))
    shots = {}
    page.locator(".chart svg rect").first.wait_for()
    shots["endpoints"] = page
    _shoot(page, screenshot_dir / f"portal-endpoints-{name}.png", width)
    page.goto(f"{portal.url}/portal/deliveries?endpoint={endpoint_ids['alerts']}")
    assert page.locator("table.list tbody tr").count() == 50
    _shoot(page, screenshot_dir / f"portal-deliveries-{name}.png", width)
    page.locator("table.list tbody tr", has_text="failed").first.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/portal/deliveries/dlv_"))
    assert page.locator("li.attempt").count() == 2
    _shoot(page, screenshot_dir / f"portal-delivery-{name}.png", width)
    assert shots


def _shoot(page: Any, path: Path, width: int, *, min_bytes: int = 10_000) -> None:
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{path.name}: the page scrolls sideways ({scroll_width}px)"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > min_bytes
