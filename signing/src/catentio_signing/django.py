"""Django: a view decorator that verifies the request and hands the view the parsed event.

::

    wh = Webhook(settings.CATENTIO_WEBHOOK_SECRET)

    @verify_webhook(wh)
    def catentio_webhook(request, event):
        ...

Works for sync and async views. The view is exempt from CSRF checks (a webhook sender has no
CSRF token; the signature is the authentication). ``request.body`` is read raw, before
anything parses it; a bad request never reaches the view and gets a 401 (missing headers) or
400 with a short JSON body such as ``{"error": "no_matching_signature", "message": "..."}``.
Async views need Django 5.0 or later.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse  # type: ignore[import-untyped]
from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]

from catentio_signing.errors import WebhookVerificationError
from catentio_signing.webhook import Webhook

__all__ = ["verify_webhook"]

V = TypeVar("V", bound=Callable[..., Any])


def verify_webhook(webhook: Webhook) -> Callable[[V], V]:
    """Decorate a Django view: verify, then call ``view(request, event, *args, **kwargs)``."""

    def verify(request: HttpRequest) -> tuple[Any, HttpResponse | None]:
        try:
            return webhook.verify(request.body, request.headers), None
        except WebhookVerificationError as exc:
            return None, JsonResponse(exc.as_json(), status=exc.status_code)

    def decorator(view: V) -> V:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                event, rejection = verify(request)
                if rejection is not None:
                    return rejection
                return await view(request, event, *args, **kwargs)

            wrapped: Callable[..., Any] = async_view
        else:

            @functools.wraps(view)
            def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                event, rejection = verify(request)
                if rejection is not None:
                    return rejection
                return view(request, event, *args, **kwargs)

            wrapped = sync_view
        exempt: V = csrf_exempt(wrapped)
        return exempt

    return decorator
