"""The portal's actions over real HTTP, on SQLite and PostgreSQL: each does what the
command line does (same domain functions), rings the workers, and is safe to repeat."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from outbox.models import Delivery, DeliveryStatus, Endpoint, Event, Trigger
from tests.support.portal import PortalServer
from tests.worker.portal.conftest import Seeded
from worker.endpoints.ping import TEST_EVENT
from worker.runtime import Runtime


class Rings:
    """Records what the portal asked the workers to look at."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, delivery_ids: Sequence[str]) -> None:
        self.ids.extend(delivery_ids)


@pytest.fixture
def rings() -> Rings:
    return Rings()


@pytest.fixture
def portal(
    database_url: str,
    make_runtime: Callable[..., Runtime],
    start_portal: Callable[..., PortalServer],
    rings: Rings,
) -> PortalServer:
    return start_portal(make_runtime(database_url), ring=rings)


def _csrf(client: httpx.Client, path: str = "/portal/") -> str:
    page = client.get(path).text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def _delivery(runtime: Runtime, delivery_id: str) -> Delivery:
    with runtime.sessions() as session:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None
        return delivery


def _endpoint(runtime: Runtime, endpoint_id: str) -> Endpoint:
    with runtime.sessions() as session:
        endpoint = session.get(Endpoint, endpoint_id)
        assert endpoint is not None
        return endpoint


def test_replaying_a_delivery_reopens_it_once_and_rings_the_workers(
    portal: PortalServer, seed: Callable[[Runtime], Seeded], rings: Rings
) -> None:
    """The failed delivery goes back to pending (trigger replay) and is rung; sending
    the same form again changes nothing and says it is already waiting."""
    seeded = seed(portal.runtime)
    assert _delivery(portal.runtime, seeded.delivery_a).status == DeliveryStatus.FAILED
    with portal.client("ws_a") as client:
        token = _csrf(client)
        path = f"/portal/deliveries/{seeded.delivery_a}/replay"
        first = client.post(path, data={"csrf_token": token})
        assert first.status_code == 303
        assert first.headers["location"].endswith("?notice=replayed")
        again = client.post(path, data={"csrf_token": token})
        assert again.headers["location"].endswith("?notice=already-pending")
        page = client.get(again.headers["location"])
        assert "already waiting" in page.text
        foreign = client.post(
            f"/portal/deliveries/{seeded.delivery_b}/replay", data={"csrf_token": token}
        )
        assert foreign.status_code == 404
    delivery = _delivery(portal.runtime, seeded.delivery_a)
    assert (delivery.status, delivery.next_trigger) == (DeliveryStatus.PENDING, Trigger.REPLAY)
    assert rings.ids == [seeded.delivery_a]
    assert _delivery(portal.runtime, seeded.delivery_b).status == DeliveryStatus.SUCCEEDED


def test_replaying_an_event_reopens_its_deliveries(
    portal: PortalServer, seed: Callable[[Runtime], Seeded], rings: Rings
) -> None:
    """An event's finished deliveries are re-opened and rung."""
    seeded = seed(portal.runtime)
    with portal.client("ws_a") as client:
        response = client.post(
            f"/portal/events/{seeded.event_a}/replay", data={"csrf_token": _csrf(client)}
        )
        assert response.status_code == 303
        assert "notice=event-replayed" in response.headers["location"]
    assert rings.ids == [seeded.delivery_a]
    assert _delivery(portal.runtime, seeded.delivery_a).status == DeliveryStatus.PENDING


def test_endpoint_switches_disable_enable_pause_resume(
    portal: PortalServer, seed: Callable[[Runtime], Seeded]
) -> None:
    """Each switch lands in its state, repeating it keeps it there, and disabling tells
    the workspace (webhook.endpoint.disabled) as the command line does."""
    seeded = seed(portal.runtime)
    base = f"/portal/endpoints/{seeded.endpoint_a}"
    with portal.client("ws_a") as client:
        token = _csrf(client, base)
        for action, check in (
            ("pause", lambda e: e.paused),
            ("pause", lambda e: e.paused),
            ("resume", lambda e: not e.paused),
            ("disable", lambda e: not e.enabled and e.disabled_reason == "disabled in the portal"),
            ("disable", lambda e: not e.enabled),
            ("enable", lambda e: e.enabled and e.disabled_reason is None),
        ):
            response = client.post(f"{base}/{action}", data={"csrf_token": token})
            assert response.status_code == 303, (action, response.text)
            assert check(_endpoint(portal.runtime, seeded.endpoint_a)), action
        assert "Endpoint enabled." in client.get(response.headers["location"]).text
    with portal.runtime.sessions() as session:
        notices = session.scalars(
            select(Event.type).where(Event.type == "webhook.endpoint.disabled")
        ).all()
    assert len(notices) == 1


def test_rotating_the_secret_shows_it_once_and_a_resubmit_does_not_rotate_again(
    portal: PortalServer, seed: Callable[[Runtime], Seeded]
) -> None:
    """The new whsec_ secret is on the answer page only; the old one keeps signing; the
    same form sent twice is refused the second time."""
    seeded = seed(portal.runtime)
    base = f"/portal/endpoints/{seeded.endpoint_a}"
    with portal.client("ws_a") as client:
        page = client.get(base).text
        token = _csrf(client, base)
        version = re.search(r'name="version" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        form = {"csrf_token": token, "version": version}
        shown = client.post(f"{base}/rotate-secret", data=form)
        assert shown.status_code == 200
        secret = re.search(r"whsec_[A-Za-z0-9+/=]+", shown.text).group(0)  # type: ignore[union-attr]
        assert "keeps signing until" in shown.text
        assert shown.headers["cache-control"] == "no-store"
        again = client.post(f"{base}/rotate-secret", data=form)
        assert again.status_code == 409
        assert "whsec_" not in again.text
        for path in (base, "/portal/", f"/portal/deliveries/{seeded.delivery_a}"):
            assert secret not in client.get(path).text
    secrets = _endpoint(portal.runtime, seeded.endpoint_a).secrets
    assert len(secrets) == 2
    assert portal.runtime.box.decrypt(secrets[0]["secret"]) == secret


def test_a_test_event_goes_to_that_endpoint_only(
    portal: PortalServer,
    seed: Callable[[Runtime], Seeded],
    add_endpoint: Callable[..., Any],
    rings: Rings,
) -> None:
    """webhook.test reaches the chosen endpoint and no other endpoint of the workspace,
    even after the poller runs."""
    seeded = seed(portal.runtime)
    other = add_endpoint(portal.runtime, workspace_id="ws_a", url="https://other.example/hook")
    with portal.client("ws_a") as client:
        response = client.post(
            f"/portal/endpoints/{seeded.endpoint_a}/test",
            data={"csrf_token": _csrf(client)},
        )
        assert response.status_code == 303
        assert "notice=test-sent" in response.headers["location"]
    portal.runtime.poller().poll_once()
    with portal.runtime.sessions() as session:
        tests = session.execute(
            select(Delivery.endpoint_id, Delivery.id).where(Delivery.event_type == TEST_EVENT)
        ).all()
    assert [endpoint for endpoint, _ in tests] == [seeded.endpoint_a]
    assert other.endpoint.id not in {endpoint for endpoint, _ in tests}
    assert rings.ids == [tests[0][1]]


def test_bulk_replay_counts_first_then_runs_with_progress(
    portal: PortalServer, seed: Callable[[Runtime], Seeded], rings: Rings
) -> None:
    """Step one only counts (nothing changes); step two re-opens them in the background
    and its progress page reaches 100 %; another workspace cannot see the run."""
    seeded = seed(portal.runtime)
    base = f"/portal/endpoints/{seeded.endpoint_a}"
    with portal.client("ws_a") as client:
        token = _csrf(client, base)
        form = {"csrf_token": token, "status_failed": "1", "since": "1h"}
        counted = client.post(f"{base}/replay", data={**form, "step": "count"})
        assert counted.status_code == 200
        assert "Replay 1 delivery?" in counted.text
        assert _delivery(portal.runtime, seeded.delivery_a).status == DeliveryStatus.FAILED
        started = client.post(f"{base}/replay", data={**form, "step": "run"})
        assert started.status_code == 303
        progress_url = started.headers["location"]
        deadline = time.monotonic() + 10
        while "done" not in (page := client.get(progress_url).text):
            assert time.monotonic() < deadline, page
            time.sleep(0.05)
        assert 'value="100"' in page and "1 re-opened" in page
        fragment = client.get(progress_url, headers={"hx-request": "true"}).text
        assert "<html" not in fragment and "hx-get" not in fragment  # done: polling stops
    with portal.client("ws_b") as other:
        assert other.get(progress_url).status_code == 404
    assert _delivery(portal.runtime, seeded.delivery_a).status == DeliveryStatus.PENDING
    assert rings.ids == [seeded.delivery_a]


def test_a_bulk_replay_of_nothing_or_of_pending_is_refused_clearly(
    portal: PortalServer, seed: Callable[[Runtime], Seeded]
) -> None:
    """No status ticked or a bad time: 400 with one message, nothing re-opened."""
    seeded = seed(portal.runtime)
    base = f"/portal/endpoints/{seeded.endpoint_a}"
    with portal.client("ws_a") as client:
        token = _csrf(client, base)
        none = client.post(f"{base}/replay", data={"csrf_token": token, "step": "run"})
        assert none.status_code == 400 and "needs the statuses" in none.text
        bad = client.post(
            f"{base}/replay",
            data={"csrf_token": token, "status_failed": "1", "since": "last tuesday"},
        )
        assert bad.status_code == 400 and "since" in bad.text
    assert _delivery(portal.runtime, seeded.delivery_a).status == DeliveryStatus.FAILED


def test_the_deliveries_table_polls_only_while_a_delivery_is_pending(
    portal: PortalServer, seed: Callable[[Runtime], Seeded]
) -> None:
    """With a pending row the table carries an htmx poll and an htmx request gets just
    the table; once nothing is pending the poll is gone."""
    seeded = seed(portal.runtime)
    with portal.client("ws_a") as client:
        assert "hx-trigger" not in client.get("/portal/deliveries").text
        client.post(
            f"/portal/deliveries/{seeded.delivery_a}/replay", data={"csrf_token": _csrf(client)}
        )
        page = client.get("/portal/deliveries")
        assert 'hx-trigger="every 2s"' in page.text
        fragment = client.get("/portal/deliveries", headers={"hx-request": "true"})
        assert fragment.text.lstrip().startswith('<div id="deliveries-table"')
        assert seeded.delivery_a in fragment.text and "<html" not in fragment.text
