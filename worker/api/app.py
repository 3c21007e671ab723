"""The ASGI application: FastAPI routes inside the request-context middleware, every
error answered in the envelope.

FastAPI because it generates the OpenAPI 3 document from the same typed models that
validate requests (pydantic v2 with ``extra="forbid"`` refuses unknown fields), runs
our synchronous domain code in its thread pool, and is served by uvicorn.

The portal (:mod:`worker.portal`) is mounted at ``/portal`` of the same app, on the
same context: its pages read through the same sessions, its actions ring the same bell
and start bulk replays on the same runner, and ``POST /v1/portal/links`` mints links
with the same secret the portal checks them with.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import Response

from outbox.errors import CatentioError
from worker.api.context import ApiContext
from worker.api.envelope import error_body, json_response
from worker.api.errors import ApiError, Code, api_error_for
from worker.api.middleware import RequestContext
from worker.api.openapi import RATE_LIMIT_HEADERS
from worker.api.routes import deliveries, events, portal, system, webhooks
from worker.api.telemetry import RequestTelemetry
from worker.ops.checks import broker_check, database_reachable
from worker.portal.app import MOUNT_PATH, create_portal_app
from worker.telemetry.requests import NO_REQUEST_METRICS

log = structlog.get_logger("worker.api")

BODY_MARGIN = 16 * 1024
"""Request bytes allowed beyond the largest event body (the JSON around ``data``)."""

DESCRIPTION = """\
The control plane's door to Catentio Webhooks: register endpoints, read their delivery
history, replay, and publish events.

Every response is the Forjio envelope `{data, error, meta}`. Authenticate with
`Authorization: Bearer cat_ak_…` (mint keys with `catentio-webhooks api-keys create`).
Writes accept `Idempotency-Key`. Every response carries `X-RateLimit-*` headers.
"""


def _answer(request: Request, error: ApiError) -> Response:
    context: ApiContext = request.app.state.context
    request_id = getattr(request.state, "request_id", "")
    body = error_body(error, request_id=request_id, now=context.clock())
    return json_response(body, error.status, error.headers)


def _field(location: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _answer(request, exc)


async def _on_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CatentioError)
    return _answer(request, api_error_for(exc))


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = tuple(first.get("loc", ()))
    kind = first.get("type", "")
    field = _field(location)
    if kind == "json_invalid":
        message, field = "request body is not valid JSON", None
    elif kind == "extra_forbidden":
        message = f"unknown field {field!r}"
    elif kind == "missing":
        message = f"{field} is required"
    else:
        message = (
            f"{field}: {first.get('msg', 'invalid')}" if field else first.get("msg", "invalid")
        )
    return _answer(request, ApiError(Code.VALIDATION_ERROR, message, field=field))


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _answer(request, ApiError(Code.NOT_FOUND, f"no route {request.url.path}"))
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode (not UTF-8, not JSON).
        return _answer(request, ApiError(Code.VALIDATION_ERROR, "request body is not valid JSON"))
    if exc.status_code == 405:
        error = ApiError(Code.VALIDATION_ERROR, f"{request.method} is not allowed here", status=405)
        return _answer(request, error)
    return _answer(
        request, ApiError(Code.VALIDATION_ERROR, str(exc.detail), status=exc.status_code)
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.error("api.internal_error", path=request.url.path, exc_info=exc)
    return _answer(request, ApiError(Code.INTERNAL, "internal error; see the server log"))


def create_app(context: ApiContext | None) -> FastAPI:
    """The API for ``context`` (one per process); None builds it only for its OpenAPI
    document (nothing can be served without a context)."""
    app = FastAPI(
        title="Catentio Webhooks API",
        version=version("catentio-webhooks"),
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
    )
    if context is not None:
        app.state.context = context
    app.include_router(system.router)
    app.include_router(webhooks.router)
    app.include_router(deliveries.router)
    app.include_router(events.router)
    app.include_router(portal.router)
    if context is not None:
        app.mount(MOUNT_PATH, portal_for(context), name="portal")
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(CatentioError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
    # The portal's pages carry no X-RateLimit-* headers: the API's budget is not theirs.
    app.add_middleware(RequestContext, body_margin=BODY_MARGIN, unmetered=(MOUNT_PATH + "/",))
    if context is not None:
        _add_telemetry(app, context)
    _document_rate_limits(app)
    return app


def _add_telemetry(app: FastAPI, context: ApiContext) -> None:
    """Outermost: request metrics (when the process has a registry), the request's
    span, and with ``CATENTIO_API_METRICS`` the exporter's paths on this port."""
    telemetry = context.telemetry
    exporter = None
    if telemetry is not None and context.settings.api_metrics:
        telemetry.watch_state(context.sessions)
        settings, engine = context.settings, context.engine
        exporter = telemetry.asgi_exporter(
            lambda: [database_reachable(engine), broker_check(settings, timeout=2.0)]
        )
    app.add_middleware(
        RequestTelemetry,
        metrics=telemetry.request_metrics() if telemetry is not None else NO_REQUEST_METRICS,
        tracing=context.tracing,
        exporter=exporter,
    )


def portal_for(context: ApiContext) -> Starlette:
    """The portal of this API process, on its context."""
    return create_portal_app(
        context.settings,
        sessions=context.sessions,
        box=context.box,
        ring=context.ring,
        clock=context.clock,
        tokens=context.portal_tokens,
        replays=context.replays,
    )


def _document_rate_limits(app: FastAPI) -> None:
    """Every response documents the ``X-RateLimit-*`` headers it carries."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for response in operation.get("responses", {}).values():
                    response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
