"""The Flask decorator, exercised through Flask's test client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask
import pytest

from catentio_signing import Webhook
from catentio_signing.flask import verify_webhook

Signed = Callable[..., dict[str, str]]


@pytest.fixture
def client(make_webhook: Callable[..., Webhook]) -> Any:
    """A Flask app with a verified webhook route (with a URL argument) and a plain route."""
    app = flask.Flask(__name__)
    received: list[Any] = []
    app.config["received"] = received

    @app.post("/hooks/<tenant>")
    @verify_webhook(make_webhook())
    def hook(event: Any, tenant: str) -> dict[str, Any]:
        received.append(event)
        return {"tenant": tenant, "type": event["data"]["type"]}

    return app.test_client()


def test_verified_request_reaches_the_view_with_the_event(
    client: Any, signed: Signed, body: bytes
) -> None:
    """A signed request runs the view with the parsed event and its URL arguments."""
    response = client.post("/hooks/acme", data=body, headers=signed(body))
    assert response.status_code == 200
    assert response.get_json() == {"tenant": "acme", "type": "run.succeeded"}


def test_bad_signature_is_answered_400_without_running_the_view(
    client: Any, signed: Signed, body: bytes, other_secret: str
) -> None:
    """A request signed with another secret gets 400 JSON and the view never runs."""
    response = client.post("/hooks/acme", data=body, headers=signed(body, secret=other_secret))
    assert response.status_code == 400
    assert response.get_json()["error"] == "no_matching_signature"
    assert client.application.config["received"] == []


def test_missing_headers_are_answered_401(client: Any, body: bytes) -> None:
    """A request without webhook headers gets 401 with a short JSON error."""
    response = client.post("/hooks/acme", data=body, content_type="application/json")
    assert response.status_code == 401
    assert response.is_json
    assert response.get_json()["error"] == "missing_header"


def test_raw_body_is_verified_even_for_form_content_types(client: Any, signed: Signed) -> None:
    """The exact bytes are verified even when Flask would parse the body as a form."""
    payload = b'{"data":{"type":"x"},"a":"b&c=d"}'
    response = client.post(
        "/hooks/acme",
        data=payload,
        headers=signed(payload) | {"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.get_json()["type"] == "x"


def test_header_names_in_any_case_work_through_flask(
    client: Any, signed: Signed, body: bytes
) -> None:
    """Werkzeug's headers object is searched case-insensitively."""
    headers = {name.upper(): value for name, value in signed(body).items()}
    assert client.post("/hooks/acme", data=body, headers=headers).status_code == 200
