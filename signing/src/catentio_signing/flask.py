"""Flask: a view decorator that verifies the request and hands the view the parsed event.

::

    wh = Webhook(os.environ["CATENTIO_WEBHOOK_SECRET"])

    @app.post("/webhooks/catentio")
    @verify_webhook(wh)
    def catentio_webhook(event):
        ...

The raw body is read (``request.get_data``) before anything parses it. A bad request never
reaches the view: it gets a 401 (missing headers), 400 (anything else) or 413 with a short
JSON body such as ``{"error": "no_matching_signature", "message": "..."}``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import flask

from catentio_signing.errors import WebhookVerificationError
from catentio_signing.webhook import Webhook

__all__ = ["verify_webhook"]

P = ParamSpec("P")
R = TypeVar("R")


def verify_webhook(
    webhook: Webhook,
) -> Callable[[Callable[Concatenate[Any, P], R]], Callable[P, R | flask.Response]]:
    """Decorate a Flask view: verify the request, then call ``view(event, *args, **kwargs)``.

    URL arguments still arrive as keyword arguments after ``event``.
    """

    def decorator(view: Callable[Concatenate[Any, P], R]) -> Callable[P, R | flask.Response]:
        @functools.wraps(view)
        def verified_view(*args: P.args, **kwargs: P.kwargs) -> R | flask.Response:
            request = flask.request
            try:
                event = webhook.verify(request.get_data(cache=True), request.headers)
            except WebhookVerificationError as exc:
                response = flask.jsonify(exc.as_json())
                response.status_code = exc.status_code
                return response
            return view(event, *args, **kwargs)

        return verified_view

    return decorator
