"""ASGI middleware that verifies webhook requests before the application sees them.

::

    from catentio_signing.asgi import WebhookMiddleware
    app = WebhookMiddleware(app, Webhook(secret), paths={"/webhooks"})
    # in the application: scope["catentio_signing.event"] is the verified, parsed body
    # (Starlette/FastAPI: request.scope["catentio_signing.event"])

Works with any ASGI framework (Starlette, FastAPI, Quart, Litestar, Django's ASGI handler).
Only HTTP requests whose path is in ``paths`` are checked (all of them when ``paths`` is
``None``). The raw body is buffered, verified, and replayed to the application, which can
read it again. Rejected requests get 401/400/413 with a short JSON body and never reach it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from catentio_signing.errors import PayloadTooLargeError, WebhookVerificationError
from catentio_signing.responses import DEFAULT_MAX_BODY_BYTES, rejection
from catentio_signing.webhook import Webhook

__all__ = ["SCOPE_KEY", "WebhookMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The scope key under which the verified, parsed event is passed on.
SCOPE_KEY = "catentio_signing.event"


class _ClientGone(Exception):
    """The client disconnected before the whole body arrived; there is no one to answer."""


class WebhookMiddleware:
    """Wrap an ASGI application so that only verified webhook requests reach it."""

    def __init__(
        self,
        app: ASGIApp,
        webhook: Webhook,
        *,
        paths: Iterable[str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.webhook = webhook
        self.paths = None if paths is None else frozenset(paths)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.paths is not None and scope["path"] not in self.paths):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(receive)
            event = self.webhook.verify(body, _headers(scope))
        except _ClientGone:
            return
        except WebhookVerificationError as exc:
            await _reject(send, exc)
            return

        replayed = False

        async def replay_body() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app({**scope, SCOPE_KEY: event}, replay_body, send)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLargeError(f"the body is larger than {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    # ASGI header names are lower-case bytes; latin-1 maps every byte, so decoding cannot fail.
    return {
        bytes(name).decode("latin-1"): bytes(value).decode("latin-1")
        for name, value in scope.get("headers", ())
    }


async def _reject(send: Send, exc: WebhookVerificationError) -> None:
    status, headers, body = rejection(exc)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
