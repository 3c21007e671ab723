"""The outermost layer of the API app: per-request metrics and the request's span, and
(with ``CATENTIO_API_METRICS``) the exporter's ``/metrics``, ``/healthz``, ``/readyz``.

Pure ASGI, around everything else, so that every answer counts, the body-limit 413s
and the error envelopes included. The route label and the span name are the route
template the router matched (``/v1/webhooks/{endpoint_id}``), read from the scope once
the app has answered; a path no route matched is ``unmatched``.

The exporter's paths are answered here, before the request context: they are for
Prometheus and probes, not API calls, so they carry no envelope, spend no rate-limit
budget, log no line per scrape, make no span and are not in the OpenAPI document.
They are counted like any request (route ``/metrics`` …).
"""

from __future__ import annotations

import re
import time

from starlette.routing import Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.telemetry.exporter import PATHS
from worker.telemetry.requests import UNMATCHED, RequestMetrics
from worker.telemetry.tracing import Tracing

TRACE_HEADERS = (b"traceparent", b"tracestate")
"""The request headers a request's span continues (W3C trace context)."""


def route_template(scope: Scope, root_path: str = "") -> str:
    """The template of the route that answered ``scope`` (after the app ran), under the
    prefix of the mounts it went through; :data:`UNMATCHED` when none did. ``root_path``
    is the scope's root path before routing."""
    mounted_at = str(scope.get("root_path", ""))
    prefix = mounted_at[len(root_path) :] if mounted_at.startswith(root_path) else ""
    route = scope.get("route")
    if isinstance(route, Mount) or (route is None and prefix):
        # A mount whose app matched nothing more precise: its prefix is all we know (a
        # mount's root path is its fixed prefix, never the rest of the path).
        return prefix or getattr(route, "path", "") or "/"
    if route is None:
        # Answered before routing (a 413 for a body over the limit): match it now.
        return _matching_route(scope) or UNMATCHED
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    return f"{prefix}{path}"


def _matching_route(scope: Scope) -> str | None:
    """The documented route template ``scope``'s path matches (from the app's OpenAPI
    paths, whatever the router's internals), for answers given before routing."""
    app = scope.get("app")
    if app is None or not hasattr(app, "openapi"):
        return None
    templates: list[tuple[re.Pattern[str], str]] | None = getattr(
        app.state, "route_templates", None
    )
    if templates is None:
        templates = [(compile_path(path)[0], path) for path in app.openapi().get("paths", {})]
        app.state.route_templates = templates
    path = str(scope.get("path", ""))
    return next((template for regex, template in templates if regex.match(path)), None)


class RequestTelemetry:
    """Counts and times every request by route template and traces it; answers the
    exporter's paths itself when given an ``exporter`` app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: RequestMetrics,
        tracing: Tracing,
        exporter: ASGIApp | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing
        self.exporter = exporter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = str(scope["method"])
        status = [500]  # what an exception that escapes the app becomes

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        path = str(scope.get("path", ""))
        if self.exporter is not None and path in PATHS:
            try:
                await self.exporter(scope, receive, send_status)
            finally:
                self.metrics.request_finished(
                    method, path, status[0], time.perf_counter() - started
                )
            return

        root_path = str(scope.get("root_path", ""))
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", ())
            if k.lower() in TRACE_HEADERS
        }
        with self.tracing.request_span(method, headers) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                route = route_template(scope, root_path)
                span.finish(route, status[0])
                self.metrics.request_finished(
                    method, route, status[0], time.perf_counter() - started
                )
