"""The ASGI middleware, with a Starlette app and with hand-driven ASGI messages."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from catentio_signing import Webhook
from catentio_signing.asgi import SCOPE_KEY, WebhookMiddleware

with warnings.catch_warnings():
    # Starlette 1.x warns once, at import, that its test client prefers the httpx2 fork;
    # plain httpx works. Silence only that warning, only for this import.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

Signed = Callable[..., dict[str, str]]
Message = MutableMapping[str, Any]


async def hook(request: Request) -> JSONResponse:
    """Answer with the verified event and the JSON Starlette parses from the replayed body."""
    return JSONResponse({"event": request.scope.get(SCOPE_KEY), "json": await request.json()})


async def health(request: Request) -> JSONResponse:
    """An unguarded route."""
    return JSONResponse({"event": request.scope.get(SCOPE_KEY)})


@pytest.fixture
def client(make_webhook: Callable[..., Webhook]) -> TestClient:
    """A Starlette app behind the middleware, guarding /hooks only."""
    app = Starlette(routes=[Route("/hooks", hook, methods=["POST"]), Route("/health", health)])
    return TestClient(WebhookMiddleware(app, make_webhook(), paths={"/hooks"}))


def test_verified_request_reaches_starlette_with_event_and_body(
    client: TestClient, signed: Signed, body: bytes
) -> None:
    """The app sees the event in its scope and can still parse the replayed body."""
    response = client.post("/hooks", content=body, headers=signed(body))
    assert response.status_code == 200
    assert response.json() == {"event": json.loads(body), "json": json.loads(body)}


def test_bad_signature_is_answered_400_json(
    client: TestClient, signed: Signed, body: bytes, other_secret: str
) -> None:
    """A wrongly signed request gets 400 with a short JSON error."""
    response = client.post("/hooks", content=body, headers=signed(body, secret=other_secret))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "no_matching_signature"


def test_missing_headers_are_answered_401(client: TestClient, body: bytes) -> None:
    """A request without webhook headers gets 401."""
    response = client.post("/hooks", content=body)
    assert response.status_code == 401
    assert response.json()["error"] == "missing_header"


def test_other_paths_pass_through(client: TestClient) -> None:
    """Requests outside the configured paths reach the app unverified."""
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"event": None}


class Recorder:
    """A downstream ASGI app that records what it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], list[Message]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        messages = []
        if scope["type"] == "http":
            while True:
                message = await receive()
                messages.append(message)
                if not message.get("more_body", False):
                    break
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        self.calls.append((dict(scope), messages))


def drive(
    app: WebhookMiddleware,
    incoming: Sequence[Message],
    headers: dict[str, str] | None = None,
    scope_type: str = "http",
) -> list[Message]:
    """Run one request through the middleware with the given receive messages."""
    scope = {
        "type": scope_type,
        "path": "/hooks",
        "method": "POST",
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    queue = list(incoming)
    sent: list[Message] = []

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_body_split_across_messages_is_reassembled(
    make_webhook: Callable[..., Webhook], signed: Signed, body: bytes
) -> None:
    """A body arriving in several http.request chunks is verified whole and replayed whole."""
    recorder = Recorder()
    chunks = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.request", "body": body[10:], "more_body": False},
    ]
    sent = drive(WebhookMiddleware(recorder, make_webhook()), chunks, signed(body))
    assert sent[0]["status"] == 204
    scope, messages = recorder.calls[0]
    assert scope[SCOPE_KEY] == json.loads(body)
    assert b"".join(m["body"] for m in messages) == body


def test_oversized_body_is_answered_413(
    make_webhook: Callable[..., Webhook], signed: Signed, body: bytes
) -> None:
    """A body over max_body_bytes gets 413 and the app is not called."""
    recorder = Recorder()
    app = WebhookMiddleware(recorder, make_webhook(), max_body_bytes=len(body) - 1)
    sent = drive(app, [{"type": "http.request", "body": body}], signed(body))
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"] == "payload_too_large"
    assert recorder.calls == []


def test_client_disconnect_before_the_body_ends_sends_nothing(
    make_webhook: Callable[..., Webhook], signed: Signed, body: bytes
) -> None:
    """If the client goes away mid-body there is no response and the app is not called."""
    recorder = Recorder()
    partial = [{"type": "http.request", "body": body[:5], "more_body": True}]
    sent = drive(WebhookMiddleware(recorder, make_webhook()), partial, signed(body))
    assert sent == []
    assert recorder.calls == []


def test_non_http_scopes_pass_through(make_webhook: Callable[..., Webhook]) -> None:
    """Lifespan (and websocket) scopes go straight to the app."""
    recorder = Recorder()
    drive(WebhookMiddleware(recorder, make_webhook()), [], scope_type="lifespan")
    assert recorder.calls[0][0]["type"] == "lifespan"
