"""The WSGI middleware, with a plain WSGI app, a Flask app, and a real loopback server."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

import flask
import httpx
import pytest
from werkzeug.test import Client

from catentio_signing import Webhook, sign_headers
from catentio_signing.wsgi import ENVIRON_KEY, WebhookMiddleware

Signed = Callable[..., dict[str, str]]


def echo_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Answer with the verified event and the body the app can still read."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length)
    payload = {"event": environ.get(ENVIRON_KEY), "raw": raw.decode("utf-8", "replace")}
    data = json.dumps(payload).encode()
    start_response("200 OK", [("content-type", "application/json")])
    return [data]


def call(app: WebhookMiddleware, environ: dict[str, Any]) -> tuple[str, bytes]:
    """Call a WSGI app directly with a hand-made environ; return (status, body)."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    result = b"".join(app(environ, start_response))
    assert len(statuses) == 1
    return statuses[0], result


@pytest.fixture
def client(make_webhook: Callable[..., Webhook]) -> Client:
    """A werkzeug test client for echo_app behind the middleware, guarding /hooks only."""
    return Client(WebhookMiddleware(echo_app, make_webhook(), paths=["/hooks"]))


def test_verified_request_reaches_the_app_with_event_and_body(
    client: Client, signed: Signed, body: bytes
) -> None:
    """The app receives the parsed event in environ and can re-read the raw body."""
    response = client.post("/hooks", data=body, headers=signed(body))
    assert response.status_code == 200
    assert response.json == {"event": json.loads(body), "raw": body.decode()}


def test_bad_signature_is_answered_400_json(
    client: Client, signed: Signed, body: bytes, other_secret: str
) -> None:
    """A wrongly signed request gets 400 with a short JSON error and never reaches the app."""
    response = client.post("/hooks", data=body, headers=signed(body, secret=other_secret))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json is not None
    assert set(response.json) == {"error", "message"}
    assert response.json["error"] == "no_matching_signature"


def test_missing_headers_are_answered_401(client: Client, body: bytes) -> None:
    """A request without webhook headers gets 401."""
    response = client.post("/hooks", data=body)
    assert response.status_code == 401
    assert response.json is not None
    assert response.json["error"] == "missing_header"


def test_other_paths_pass_through_unverified(client: Client) -> None:
    """Requests outside the configured paths reach the app untouched."""
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json is not None
    assert response.json["event"] is None


def test_oversized_body_is_answered_413_without_reading_it(
    make_webhook: Callable[..., Webhook], signed: Signed, body: bytes
) -> None:
    """A declared length above max_body_bytes is refused with 413 before reading the body."""

    class Unreadable(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("the body must not be read")

    middleware = WebhookMiddleware(echo_app, make_webhook(), max_body_bytes=10)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/hooks",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": Unreadable(),
    }
    status, result = call(middleware, environ)
    assert status == "413 Request Entity Too Large"
    assert json.loads(result)["error"] == "payload_too_large"


def test_chunked_body_without_length_is_read_to_its_end(
    make_webhook: Callable[..., Webhook], signed: Signed, body: bytes
) -> None:
    """With wsgi.input_terminated and no CONTENT_LENGTH the whole stream is verified."""
    headers = signed(body)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/hooks",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "HTTP_WEBHOOK_ID": headers["webhook-id"],
        "HTTP_WEBHOOK_TIMESTAMP": headers["webhook-timestamp"],
        "HTTP_WEBHOOK_SIGNATURE": headers["webhook-signature"],
    }
    status, result = call(WebhookMiddleware(echo_app, make_webhook()), environ)
    assert status == "200 OK"
    assert json.loads(result)["event"] == json.loads(body)


def test_non_numeric_content_length_is_malformed(make_webhook: Callable[..., Webhook]) -> None:
    """A CONTENT_LENGTH that is not a number is answered 400, not a crash."""
    environ = {"PATH_INFO": "/hooks", "CONTENT_LENGTH": "12abc", "wsgi.input": io.BytesIO()}
    status, result = call(WebhookMiddleware(echo_app, make_webhook()), environ)
    assert status == "400 Bad Request"
    assert json.loads(result)["error"] == "malformed_header"


def test_wraps_a_flask_wsgi_app(
    make_webhook: Callable[..., Webhook], signed: Signed, body: bytes
) -> None:
    """Flask apps can be guarded by wrapping app.wsgi_app; Flask still parses the body."""
    app = flask.Flask(__name__)

    @app.post("/hooks")
    def hook() -> dict[str, Any]:
        return {"event": flask.request.environ[ENVIRON_KEY], "json": flask.request.get_json()}

    app.wsgi_app = WebhookMiddleware(app.wsgi_app, make_webhook())  # type: ignore[method-assign]
    headers = signed(body) | {"content-type": "application/json"}
    response = app.test_client().post("/hooks", data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"event": json.loads(body), "json": json.loads(body)}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


@pytest.fixture
def server_url(secret: str) -> Iterator[str]:
    """A real wsgiref HTTP server on loopback running echo_app behind the middleware."""
    app = WebhookMiddleware(echo_app, Webhook(secret), paths=["/hooks"])
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_over_real_http(server_url: str, secret: str, other_secret: str, body: bytes) -> None:
    """Over a real socket, a signed request is accepted and a forged one gets 400."""
    headers = sign_headers(secret, msg_id="evt_http", timestamp=int(time.time()), payload=body)
    forged = sign_headers(other_secret, msg_id="evt_http", timestamp=int(time.time()), payload=body)
    with httpx.Client(base_url=server_url, timeout=10) as http:
        accepted = http.post("/hooks", content=body, headers=headers)
        refused = http.post("/hooks", content=body, headers=forged)
    assert accepted.status_code == 200
    assert accepted.json()["event"] == json.loads(body)
    assert refused.status_code == 400
    assert refused.json()["error"] == "no_matching_signature"
