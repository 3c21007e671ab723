"""Getting into the portal and staying in one's own workspace, over real HTTP
(uvicorn on loopback, httpx): links, the session cookie, tenancy, CSRF, headers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from outbox.models import Attempt, Delivery, DeliveryStatus, Endpoint
from tests.support.clock import ManualClock
from tests.support.portal import PortalServer
from tests.worker.portal.conftest import XSS_BODY, Seeded
from worker.runtime import Runtime


@pytest.fixture
def portal(
    sqlite_url: str,
    make_runtime: Callable[..., Runtime],
    start_portal: Callable[..., PortalServer],
) -> PortalServer:
    return start_portal(make_runtime(sqlite_url))


def test_opening_a_link_sets_a_strict_http_only_session_cookie(portal: PortalServer) -> None:
    """The link answers 200 with a page that moves on to the portal, and a cookie that
    is HttpOnly, SameSite=Strict, scoped to /portal/ and expiring; the portal opens."""
    with httpx.Client(base_url=portal.url) as client:
        response = client.get(portal.link("ws_a"))
        assert response.status_code == 200
        assert '<meta http-equiv="refresh" content="0;url=/portal/">' in response.text
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("catentio_portal=")
        for flag in ("HttpOnly", "SameSite=strict", "Path=/portal/", "Max-Age=28800"):
            assert flag.lower() in cookie.lower()
        assert "secure" not in cookie.lower()  # plain http on loopback
        page = client.get("/portal/")
        assert page.status_code == 200
        assert "ws_a" in page.text


def test_the_cookie_is_secure_behind_https(portal: PortalServer) -> None:
    """Behind a TLS-terminating proxy (X-Forwarded-Proto from a trusted address) the
    cookie is marked Secure."""
    with httpx.Client(base_url=portal.url) as client:
        response = client.get(portal.link("ws_a"), headers={"x-forwarded-proto": "https"})
        assert "secure" in response.headers["set-cookie"].lower()


def test_expired_and_tampered_links_are_refused(
    sqlite_url: str, make_runtime: Callable[..., Runtime], start_portal: Callable[..., PortalServer]
) -> None:
    """A link opened after its expiry, or altered, gets 403 and no cookie."""
    clock = ManualClock()
    portal = start_portal(make_runtime(sqlite_url, clock=clock))
    expired = portal.link("ws_a", ttl=timedelta(minutes=5))
    tampered = portal.link("ws_a").replace("token=e", "token=f")
    clock.advance(timedelta(minutes=6))
    with httpx.Client(base_url=portal.url) as client:
        for url, words in ((expired, "expired"), (tampered, "not valid")):
            response = client.get(url)
            assert response.status_code == 403
            assert words in response.text
            assert "set-cookie" not in response.headers
        assert client.get("/portal/").status_code == 401


def test_pages_without_a_session_answer_401(portal: PortalServer) -> None:
    """No cookie, or a forged one: every page is refused with a sign-in-again page."""
    with httpx.Client(base_url=portal.url) as client:
        for path in ("/portal/", "/portal/deliveries", "/portal/events"):
            assert client.get(path).status_code == 401
        client.cookies.set("catentio_portal", "eyJ3cyI6IndzX2EifQ.forged", path="/portal/")
        response = client.get("/portal/")
        assert response.status_code == 401
        assert "open a portal link" in response.text


def test_a_workspace_never_sees_another_workspaces_rows(
    portal: PortalServer, seed: Callable[[Runtime], Seeded]
) -> None:
    """Workspace A's session gets 404 for B's delivery, event and endpoint by URL, the
    same as for an id that does not exist, and B's rows appear in none of A's lists."""
    seeded = seed(portal.runtime)
    with portal.client("ws_a") as client:
        missing = client.get("/portal/deliveries/dlv_00000000000000000000000000")
        assert missing.status_code == 404
        for path in (
            f"/portal/deliveries/{seeded.delivery_b}",
            f"/portal/events/{seeded.event_b}",
            f"/portal/endpoints/{seeded.endpoint_b}",
        ):
            response = client.get(path)
            assert response.status_code == 404, path
            assert _endpoint(portal, seeded.endpoint_b).url not in response.text
            assert "run.succeeded" not in response.text  # nor of B's event
        assert client.get(f"/portal/deliveries/{seeded.delivery_a}").status_code == 200
        listings = "".join(
            client.get(p).text for p in ("/portal/", "/portal/deliveries", "/portal/events")
        )
        assert seeded.delivery_a in listings and seeded.event_a in listings
        for foreign in (seeded.delivery_b, seeded.event_b, seeded.endpoint_b):
            assert foreign not in listings
        # Filtering by B's endpoint or event shows nothing either.
        response = client.get(f"/portal/deliveries?endpoint={seeded.endpoint_b}")
        assert seeded.delivery_b not in response.text


def test_state_changing_requests_need_the_sessions_csrf_token(
    portal: PortalServer, seed: Callable[[Runtime], Seeded]
) -> None:
    """A POST without the token, with another session's, or from another origin is
    refused with 403 and changes nothing; with the token it works."""
    seeded = seed(portal.runtime)
    path = f"/portal/endpoints/{seeded.endpoint_a}/pause"
    with portal.client("ws_a") as client, portal.client("ws_a") as other:
        other_token = _csrf(other)
        attempts = [
            client.post(path),
            client.post(path, data={"csrf_token": other_token}),
            client.post(path, data={"csrf_token": "forged"}),
            client.post(
                path,
                data={"csrf_token": _csrf(client)},
                headers={"origin": "https://evil.example"},
            ),
        ]
        for response in attempts:
            assert response.status_code == 403
            assert "CSRF" in response.text or "another site" in response.text
        assert not _endpoint(portal, seeded.endpoint_a).paused
        done = client.post(path, data={"csrf_token": _csrf(client)})
        assert done.status_code == 303
        assert _endpoint(portal, seeded.endpoint_a).paused
        # htmx sends the token as a header instead of a form field.
        resumed = client.post(
            f"/portal/endpoints/{seeded.endpoint_a}/resume", headers={"x-csrf-token": _csrf(client)}
        )
        assert resumed.status_code == 303
        assert not _endpoint(portal, seeded.endpoint_a).paused


def test_a_read_only_session_can_look_but_not_act(
    portal: PortalServer, seed: Callable[[Runtime], Seeded]
) -> None:
    """A read-only link shows the pages without action buttons and refuses actions."""
    seeded = seed(portal.runtime)
    with portal.client("ws_a", read_only=True) as client:
        page = client.get(f"/portal/deliveries/{seeded.delivery_a}")
        assert page.status_code == 200
        assert "read-only" in page.text
        assert "/replay" not in page.text
        response = client.post(
            f"/portal/deliveries/{seeded.delivery_a}/replay", data={"csrf_token": _csrf(client)}
        )
        assert response.status_code == 403
        assert "read-only" in response.text
    with portal.runtime.sessions() as session:
        assert session.get(Delivery, seeded.delivery_a).status == DeliveryStatus.FAILED or (
            session.get(Delivery, seeded.delivery_a).next_trigger == "scheduled"
        )


def test_every_response_carries_a_strict_content_security_policy(
    portal: PortalServer, seed: Callable[[Runtime], Seeded]
) -> None:
    """Pages, error pages and refusals carry the CSP and the other security headers;
    pages are not cached, static files may be."""
    seed(portal.runtime)
    with portal.client("ws_a") as client:
        responses = [
            client.get("/portal/"),
            client.get("/portal/deliveries?status=nonsense"),
            client.get("/portal/deliveries/dlv_nope"),
            client.post("/portal/logout"),
            httpx.get(portal.url + "/portal/"),
        ]
        for response in responses:
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
            assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["server-timing"].startswith("app;dur=")
        static = client.get("/portal/static/htmx.min.js")
        assert static.status_code == 200
        assert static.text.startswith("/*! htmx 2.")
        assert static.headers.get("cache-control") != "no-store"


def test_frame_ancestors_come_from_the_setting(
    sqlite_url: str, make_runtime: Callable[..., Runtime], start_portal: Callable[..., PortalServer]
) -> None:
    """CATENTIO_PORTAL_FRAME_ANCESTORS lets the control plane embed the portal."""
    runtime = make_runtime(sqlite_url, portal_frame_ancestors="https://app.catentio.example")
    portal = start_portal(runtime)
    response = httpx.get(portal.url + "/portal/")
    assert (
        "frame-ancestors https://app.catentio.example"
        in response.headers["content-security-policy"]
    )
    assert "x-frame-options" not in response.headers


def test_what_a_receiver_sent_back_is_escaped(
    portal: PortalServer, seed: Callable[[Runtime], Seeded]
) -> None:
    """The stored response body and headers appear HTML-escaped, never as markup."""
    seeded = seed(portal.runtime)
    with portal.runtime.sessions() as session:
        bodies = session.scalars(
            select(Attempt.response_body).where(Attempt.delivery_id == seeded.delivery_a)
        ).all()
        assert bodies and all(body == XSS_BODY.decode() for body in bodies)
    with portal.client("ws_a") as client:
        page = client.get(f"/portal/deliveries/{seeded.delivery_a}").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;from the receiver&#34;)&lt;/script&gt;" in page
    assert "&lt;b onmouseover=alert(3)&gt;" in page


def test_bad_filters_are_one_clear_message(portal: PortalServer) -> None:
    """A bad status, time or cursor answers 400 with the form and one message."""
    with portal.client("ws_a") as client:
        for query, words in (
            ("status=nonsense", "is not one of"),
            ("since=yesterday-ish", "since"),
            ("after=dlv_bad", "cursor"),
            ("type=Not A Type", "type"),
        ):
            response = client.get(f"/portal/deliveries?{query}")
            assert response.status_code == 400, query
            assert words in response.text, query
            assert "Traceback" not in response.text


def test_logging_out_forgets_the_session(portal: PortalServer) -> None:
    """After signing out the cookie is gone and the pages ask for a link again."""
    with portal.client("ws_a") as client:
        response = client.post("/portal/logout", data={"csrf_token": _csrf(client)})
        assert response.status_code == 303
        assert client.get("/portal/").status_code == 401


def _csrf(client: httpx.Client) -> str:
    page = client.get("/portal/").text
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def _endpoint(portal: PortalServer, endpoint_id: str) -> Any:
    with portal.runtime.sessions() as session:
        endpoint = session.get(Endpoint, endpoint_id)
        assert endpoint is not None
        session.expunge(endpoint)
        return endpoint
