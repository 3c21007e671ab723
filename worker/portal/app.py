"""The portal's ASGI application: pages, actions, static files and error pages.

``create_portal_app`` builds the app the API process mounts at ``/portal``
(:func:`worker.api.app.create_app`), so ``catentio-webhooks api`` and ``run`` serve it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import parse_qsl

import structlog
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from outbox.clock import Clock, utcnow
from outbox.errors import ValidationError
from worker.endpoints.secretbox import SecretBox
from worker.errors import Conflict, NotFound
from worker.ops.replay_runs import ReplayRunner
from worker.portal import access, actions, login, pages
from worker.portal.context import PortalContext, Ring, portal_of
from worker.portal.errors import PortalError
from worker.portal.headers import SecurityHeaders
from worker.portal.keys import portal_secrets
from worker.portal.rendering import Renderer
from worker.portal.timing import ServerTiming
from worker.portal.tokens import Tokens
from worker.settings import Settings

log = structlog.get_logger("worker.portal")

MOUNT_PATH = "/portal"
"""Where the API process mounts the portal."""

MAX_FORM_BYTES = 16 * 1024
"""The largest form a portal action accepts."""

FormHandler = Callable[[Request, Mapping[str, str]], Response]


def form_route(path: str, handler: FormHandler, *, name: str) -> Route:
    """A POST route: the urlencoded form is read (bounded), then ``handler`` runs in
    the thread pool, as every database call of the portal does."""

    async def endpoint(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise ValidationError("the form is too large")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return await run_in_threadpool(handler, request, form)

    return Route(path, endpoint, methods=["POST"], name=name)


def _error_page(
    request: Request, status_code: int, title: str, message: str, *, sign_in: bool = False
) -> Response:
    portal = portal_of(request)
    context = {
        "base": access.portal_path(request),
        "title": title,
        "message": message,
        "sign_in": sign_in,
    }
    return portal.renderer.page(request, "error.html", context, status_code=status_code)


async def _portal_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PortalError)
    log.info("portal.refused", reason=type(exc).__name__, path=request.url.path)
    title = "Sign in again" if exc.status_code == 401 else "Not allowed"
    return _error_page(request, exc.status_code, title, str(exc), sign_in=exc.status_code == 401)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error_page(request, 404, "Not found", str(exc) or "There is nothing here.")


async def _refused(request: Request, exc: Exception) -> Response:
    status = 409 if isinstance(exc, Conflict) else 400
    return _error_page(request, status, "Cannot do that", str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error_page(request, exc.status_code, "Not found", exc.detail)


def create_portal_app(
    settings: Settings,
    *,
    sessions: sessionmaker[Session],
    box: SecretBox | None = None,
    ring: Ring | None = None,
    clock: Clock = utcnow,
    tokens: Tokens | None = None,
    replays: ReplayRunner | None = None,
) -> Starlette:
    """The portal, to be mounted at :data:`MOUNT_PATH`. Without ``box``, rotating a
    secret is not offered; without ``ring``, replayed deliveries wait for the sweeper;
    bulk replays run on ``replays`` (the API process's runner), else on a runner of
    the portal's own."""
    handlers: Mapping[object, Callable[[Request, Exception], Awaitable[Response]]] = {
        PortalError: _portal_error,
        NotFound: _not_found,
        ValidationError: _refused,
        Conflict: _refused,
        HTTPException: _http_error,
    }
    app = Starlette(
        routes=[
            Route("/", pages.endpoints_page, name="endpoints"),
            Route("/open", access.open_link, name="open"),
            Route("/signed-out", access.signed_out, name="signed_out"),
            Route("/login", login.login_page, name="login"),
            form_route("/login", login.log_in, name="log_in"),
            Route("/endpoints/{endpoint_id}", pages.endpoint_page, name="endpoint"),
            Route("/deliveries", pages.deliveries_page, name="deliveries"),
            Route("/deliveries/{delivery_id}", pages.delivery_detail_page, name="delivery"),
            Route(
                "/endpoints/{endpoint_id}/replays/{run_id}",
                pages.replay_run_page,
                name="replay_run",
            ),
            Route("/events", pages.events_page, name="events"),
            Route("/events/{event_id}", pages.event_detail_page, name="event"),
            form_route("/logout", access.log_out, name="logout"),
            *[form_route(path, handler, name=name) for path, handler, name in actions.ROUTES],
            Mount("/static", StaticFiles(packages=[("worker.portal", "static")]), name="static"),
        ],
        exception_handlers=dict(handlers),
    )
    app.state.portal = PortalContext(
        settings=settings,
        sessions=sessions,
        tokens=tokens or Tokens(portal_secrets(settings)),
        renderer=Renderer(),
        replays=replays or ReplayRunner(sessions, ring=ring, clock=clock),
        box=box,
        ring=ring,
        clock=clock,
    )
    app.add_middleware(ServerTiming)
    app.add_middleware(
        SecurityHeaders,
        frame_ancestors=settings.portal_frame_ancestors,
        cacheable=(MOUNT_PATH + "/static/", "/static/"),
    )
    return app
