"""WSGI middleware that verifies webhook requests before the application sees them.

::

    from catentio_signing.wsgi import WebhookMiddleware
    app.wsgi_app = WebhookMiddleware(app.wsgi_app, Webhook(secret), paths={"/webhooks"})
    # in the application: environ["catentio_signing.event"] is the verified, parsed body

Only requests whose ``PATH_INFO`` is in ``paths`` are checked (all requests when ``paths``
is ``None``). The raw body is read once, verified, and put back as ``wsgi.input`` so the
application can read it again. Rejected requests get 401/400/413 with a short JSON body and
never reach the application.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from catentio_signing.errors import (
    MalformedHeaderError,
    PayloadTooLargeError,
    WebhookVerificationError,
)
from catentio_signing.headers import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from catentio_signing.responses import DEFAULT_MAX_BODY_BYTES, rejection
from catentio_signing.webhook import Webhook

__all__ = ["ENVIRON_KEY", "WebhookMiddleware"]

#: The ``environ`` key under which the verified, parsed event is passed on.
ENVIRON_KEY = "catentio_signing.event"

_ENVIRON_HEADERS = {
    "HTTP_WEBHOOK_ID": ID_HEADER,
    "HTTP_WEBHOOK_TIMESTAMP": TIMESTAMP_HEADER,
    "HTTP_WEBHOOK_SIGNATURE": SIGNATURE_HEADER,
}


class WebhookMiddleware:
    """Wrap a WSGI application so that only verified webhook requests reach it."""

    def __init__(
        self,
        app: WSGIApplication,
        webhook: Webhook,
        *,
        paths: Iterable[str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.webhook = webhook
        self.paths = None if paths is None else frozenset(paths)
        self.max_body_bytes = max_body_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.paths is not None and environ.get("PATH_INFO", "") not in self.paths:
            return self.app(environ, start_response)
        try:
            body = self._read_body(environ)
            headers = {
                name: environ[key] for key, name in _ENVIRON_HEADERS.items() if key in environ
            }
            event = self.webhook.verify(body, headers)
        except WebhookVerificationError as exc:
            status, response_headers, response_body = rejection(exc)
            start_response(f"{status} {HTTPStatus(status).phrase}", response_headers)
            return [response_body]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ[ENVIRON_KEY] = event
        return self.app(environ, start_response)

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        stream = environ["wsgi.input"]
        declared = environ.get("CONTENT_LENGTH") or ""
        if declared:
            if not declared.isdigit():
                raise MalformedHeaderError("content-length is not a number")
            length = int(declared)
            if length > self.max_body_bytes:
                raise PayloadTooLargeError(f"the body is larger than {self.max_body_bytes} bytes")
            body: bytes = stream.read(length)
            return body
        if environ.get("wsgi.input_terminated"):
            # Chunked request: the server ends the stream, so read up to one byte past the cap.
            body = stream.read(self.max_body_bytes + 1)
            if len(body) > self.max_body_bytes:
                raise PayloadTooLargeError(f"the body is larger than {self.max_body_bytes} bytes")
            return body
        return b""
