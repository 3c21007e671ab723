"""FastAPI (and Starlette routing under FastAPI): a dependency that yields the verified event.

::

    verified_event = webhook_dependency(Webhook(os.environ["CATENTIO_WEBHOOK_SECRET"]))

    @app.post("/webhooks/catentio")
    async def catentio_webhook(event: Annotated[Any, Depends(verified_event)]):
        ...

The dependency awaits the raw body before anything parses it. A bad request gets a 401
(missing headers) or 400 whose JSON body is FastAPI's usual
``{"detail": {"error": "...", "message": "..."}}``. For a plain Starlette application use
``catentio_signing.asgi.WebhookMiddleware``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException, Request

from catentio_signing.errors import WebhookVerificationError
from catentio_signing.webhook import Webhook

__all__ = ["webhook_dependency"]


def webhook_dependency(webhook: Webhook) -> Callable[[Request], Awaitable[Any]]:
    """Return a FastAPI dependency that verifies the request and returns the parsed event."""

    async def verified_event(request: Request) -> Any:
        body = await request.body()
        try:
            return webhook.verify(body, request.headers)
        except WebhookVerificationError as exc:
            raise HTTPException(status_code=exc.status_code, detail=exc.as_json()) from exc

    return verified_event
