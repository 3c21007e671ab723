"""Portal fixtures: the portal app under a real uvicorn on loopback, a signed-in httpx
client, and Debian's chromium driven by playwright.

Browser tests need ``chromium`` on PATH (``apt-get install chromium``; ``.ci/run``
installs it). Without it they are skipped locally and FAIL under ``CI=true``, like a
missing PostgreSQL. Playwright never downloads a browser here: it is pointed at the
system one with ``executable_path``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from outbox.models import Delivery, DeliveryStatus
from outbox.publish import publish
from tests.support.portal import PORTAL_SECRET, PortalServer, serve, standalone_app
from tests.support.services import service_missing
from tests.worker.api.conftest import make_api, sqlite_api  # noqa: F401 (fixtures)
from worker.demo.receiver import Receiver, always
from worker.endpoints.registry import NewSecret
from worker.portal.app import create_portal_app
from worker.portal.tokens import Tokens
from worker.runtime import Runtime

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""On top of ``--headless`` (playwright adds it) and a fresh ``--user-data-dir``: the
machine's closed network otherwise makes chromium wait on update and sync services."""


@pytest.fixture
def start_portal() -> Iterator[Callable[..., PortalServer]]:
    """Builder: ``start_portal(runtime, **app_kwargs)`` serves the portal of ``runtime``
    (ringing its broker) under uvicorn; stopped afterwards."""
    stack: list[Any] = []

    def start(runtime: Runtime, **kwargs: Any) -> PortalServer:
        tokens = Tokens((PORTAL_SECRET,))
        app = create_portal_app(
            runtime.settings.with_(portal_secrets=(PORTAL_SECRET,)),
            sessions=runtime.sessions,
            box=kwargs.pop("box", runtime.box),
            ring=kwargs.pop("ring", runtime.dispatch),
            clock=kwargs.pop("clock", runtime.clock),
            tokens=tokens,
            **kwargs,
        )
        context = serve(standalone_app(app))
        url = context.__enter__()
        stack.append(context)
        return PortalServer(url, runtime, tokens)

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


# The browser -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium (``CATENTIO_CHROMIUM`` overrides where it is)."""
    path = os.environ.get("CATENTIO_CHROMIUM") or shutil.which("chromium")
    if not path:
        service_missing("chromium", FileNotFoundError("chromium is not installed"))
    assert path is not None
    return path


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    """Playwright's driver, once per module: its sync API keeps an event loop running
    in this thread while it is open, which later tests using asyncio.run must not see."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@dataclass
class BrowserPage:
    """A playwright page and every dialog (alert, confirm) it opened so far."""

    page: Any
    dialogs: list[str]


@pytest.fixture
def browser(chromium_path: str, playwright_driver: Any, tmp_path: Path) -> Iterator[BrowserPage]:
    """A page in a fresh chromium profile. Every dialog is recorded and accepted, as a
    person confirming an action would."""
    context = playwright_driver.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=chromium_path,
        headless=True,
        args=CHROMIUM_FLAGS,
        viewport={"width": 1280, "height": 900},
    )
    page = context.pages[0] if context.pages else context.new_page()
    page.set_default_timeout(15_000)
    opened = BrowserPage(page, [])

    def on_dialog(dialog: Any) -> None:
        opened.dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", on_dialog)
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots are kept: ``CATENTIO_SCREENSHOTS`` or the pytest tmp path."""
    given = os.environ.get("CATENTIO_SCREENSHOTS")
    path = Path(given) if given else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


XSS_BODY = b'<script>alert("from the receiver")</script><img src=x onerror=alert(2)>'
"""What a hostile receiver answers: must show as text, never run."""


@dataclass(frozen=True)
class Seeded:
    """What ``seed`` made: workspace A's endpoint, event and delivery (with one
    attempt, answered 500 with a hostile body) and workspace B's."""

    endpoint_a: str
    event_a: str
    delivery_a: str
    endpoint_b: str
    event_b: str
    delivery_b: str


def deliver_all(runtime: Runtime, *, rounds: int = 50) -> None:
    """Fan out what waits, then attempt every pending delivery in this thread (no
    workers needed), again as retries come due, until none is pending."""
    runtime.poller().poll_once()
    for _ in range(rounds):
        with runtime.sessions() as session:
            pending = list(
                session.scalars(
                    select(Delivery.id).where(Delivery.status == DeliveryStatus.PENDING)
                )
            )
        if not pending:
            return
        for delivery_id in pending:
            runtime.deliverer.deliver(delivery_id)
        time.sleep(0.05)
    raise AssertionError(f"deliveries still pending after {rounds} rounds")


@pytest.fixture
def seed(add_endpoint: Callable[..., NewSecret], receiver: Receiver) -> Callable[[Runtime], Seeded]:
    """Builder: one endpoint, event and attempted delivery in workspace A (the receiver
    answers 500 with a hostile body and header) and the same in workspace B."""

    def build(runtime: Runtime) -> Seeded:
        hostile = always(500, body=XSS_BODY, headers={"x-evil": "<b onmouseover=alert(3)>"})
        a = add_endpoint(
            runtime, receiver=receiver, path="/a", workspace_id="ws_a", behaviour=hostile
        )
        b = add_endpoint(runtime, receiver=receiver, path="/b", workspace_id="ws_b")
        with runtime.sessions() as session, session.begin():
            event_a = publish(session, workspace_id="ws_a", type="run.failed", data={"run": 1})
            event_b = publish(session, workspace_id="ws_b", type="run.succeeded", data={"run": 2})
        deliver_all(runtime)
        with runtime.sessions() as session:
            by_event = {e: d for e, d in session.execute(select(Delivery.event_id, Delivery.id))}
        return Seeded(
            endpoint_a=a.endpoint.id,
            event_a=event_a.id,
            delivery_a=by_event[event_a.id],
            endpoint_b=b.endpoint.id,
            event_b=event_b.id,
            delivery_b=by_event[event_b.id],
        )

    return build
