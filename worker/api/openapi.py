"""The OpenAPI document: the error responses every operation may give, and the document
itself as committed in ``docs/openapi.json`` (a test fails when they differ)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from worker.api.envelope import ErrorEnvelope

RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "Requests allowed per window.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in this window.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "Unix time (s) at which the window frees up.",
        "schema": {"type": "integer"},
    },
}

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "UNAUTHENTICATED: no or unknown API key."},
    403: {"model": ErrorEnvelope, "description": "FORBIDDEN: the key may not do this."},
    404: {"model": ErrorEnvelope, "description": "NOT_FOUND (also: another workspace's id)."},
    409: {"model": ErrorEnvelope, "description": "CONFLICT: refused in the current state."},
    413: {"model": ErrorEnvelope, "description": "PAYLOAD_TOO_LARGE."},
    422: {
        "model": ErrorEnvelope,
        "description": "VALIDATION_ERROR (with `field`) or IDEMPOTENCY_KEY_REUSED.",
    },
    429: {
        "model": ErrorEnvelope,
        "description": "RATE_LIMITED: see `Retry-After`.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
    500: {"model": ErrorEnvelope, "description": "INTERNAL."},
    503: {"model": ErrorEnvelope, "description": "INTERNAL: the database or broker is down."},
}
"""Responses any authenticated operation may give, in the error envelope."""


def render(app: FastAPI) -> str:
    """The app's document as committed: indented, a final newline."""
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


def offline_document() -> str:
    """The document of this code, without a database (what docs/openapi.json holds)."""
    from worker.api.app import create_app

    return render(create_app(None))
