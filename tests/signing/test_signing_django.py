"""The Django view decorator, exercised through Django's test client with CSRF enforced."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import django  # type: ignore[import-untyped]
import pytest
from django.conf import settings  # type: ignore[import-untyped]

if not settings.configured:
    # The smallest settings that run views behind the real middleware: CSRF stays on to
    # prove the decorator exempts webhook views, which carry a signature, not a CSRF token.
    settings.configure(
        DEBUG=False,
        SECRET_KEY="catentio-signing-tests",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

# Imported only now: these modules read the settings configured above.
from django.http import HttpRequest, JsonResponse  # type: ignore[import-untyped]
from django.test import Client  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]

from catentio_signing import Webhook, sign_headers
from catentio_signing.django import verify_webhook

SECRET = "whsec_" + "ZGphbmdvLXRlc3Qtc2VjcmV0LW9mLTMyLWJ5dGVzISE="
# Django resolves views at import time, so the webhook here reads the real clock.
WEBHOOK = Webhook(SECRET)
RECEIVED: list[Any] = []


@verify_webhook(WEBHOOK)
def sync_hook(request: HttpRequest, event: Any, tenant: str) -> JsonResponse:
    RECEIVED.append(event)
    return JsonResponse({"tenant": tenant, "type": event["data"]["type"], "mode": "sync"})


@verify_webhook(WEBHOOK)
async def async_hook(request: HttpRequest, event: Any) -> JsonResponse:
    RECEIVED.append(event)
    return JsonResponse({"type": event["data"]["type"], "mode": "async"})


urlpatterns = [
    path("hooks/<str:tenant>", sync_hook),
    path("async-hook", async_hook),
]


@pytest.fixture
def client() -> Client:
    """A Django test client that enforces CSRF like a real browser-facing site."""
    RECEIVED.clear()
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def django_signed(body: bytes) -> Callable[..., dict[str, str]]:
    """Signature headers for the Django secret, stamped with the real clock."""

    def build(payload: bytes = body, *, secret: str = SECRET) -> dict[str, str]:
        return sign_headers(secret, msg_id="evt_dj", timestamp=int(time.time()), payload=payload)

    return build


def test_sync_view_receives_the_event_and_url_arguments(
    client: Client, django_signed: Callable[..., dict[str, str]], body: bytes
) -> None:
    """A signed POST reaches the sync view with the event, URL kwargs, and no CSRF token."""
    response = client.post(
        "/hooks/acme", data=body, content_type="application/json", headers=django_signed()
    )
    assert response.status_code == 200
    assert response.json() == {"tenant": "acme", "type": "run.succeeded", "mode": "sync"}
    assert [json.loads(body)] == RECEIVED


def test_async_view_receives_the_event(
    client: Client, django_signed: Callable[..., dict[str, str]], body: bytes
) -> None:
    """The decorator keeps async views async and passes them the event."""
    response = client.post(
        "/async-hook", data=body, content_type="application/json", headers=django_signed()
    )
    assert response.status_code == 200
    assert response.json() == {"type": "run.succeeded", "mode": "async"}


def test_bad_signature_is_answered_400_without_running_the_view(
    client: Client, django_signed: Callable[..., dict[str, str]], body: bytes, other_secret: str
) -> None:
    """A request signed with another secret gets 400 JSON; the view does not run."""
    response = client.post(
        "/hooks/acme",
        data=body,
        content_type="application/json",
        headers=django_signed(secret=other_secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "no_matching_signature"
    assert RECEIVED == []


@pytest.mark.parametrize("url", ["/hooks/acme", "/async-hook"])
def test_missing_headers_are_answered_401(client: Client, body: bytes, url: str) -> None:
    """Without webhook headers, sync and async views answer 401 JSON."""
    response = client.post(url, data=body, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error"] == "missing_header"
    assert RECEIVED == []
