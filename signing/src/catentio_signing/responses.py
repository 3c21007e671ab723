"""What the WSGI and ASGI middleware answer when they reject a request.

The body is the short JSON of ``WebhookVerificationError.as_json()``; the status comes from
the error (401 missing headers, 413 too large, 400 otherwise).

>>> from catentio_signing.errors import MissingHeaderError
>>> status, headers, body = rejection(MissingHeaderError("missing webhook-id header"))
>>> status, body
(401, b'{"error":"missing_header","message":"missing webhook-id header"}')
"""

from __future__ import annotations

import json

from catentio_signing.errors import WebhookVerificationError

__all__ = ["DEFAULT_MAX_BODY_BYTES", "rejection"]

#: Largest body the middleware reads before answering 413. Webhook bodies are small JSON
#: documents; the cap keeps a hostile client from making the receiver buffer gigabytes.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def rejection(exc: WebhookVerificationError) -> tuple[int, list[tuple[str, str]], bytes]:
    """Return ``(status, headers, body)`` for a rejected request."""
    body = json.dumps(exc.as_json(), separators=(",", ":")).encode("utf-8")
    headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
    return exc.status_code, headers, body
