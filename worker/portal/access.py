"""Getting in and staying in: opening a link, the session cookie, CSRF on every write.

Opening a link answers with a small page that sets the session cookie and moves on to
the portal with a ``<meta refresh>``: a link usually arrives from another site (the
control plane, a chat message), and a ``SameSite=Strict`` cookie set during that
cross-site navigation would not be sent on a redirect that belongs to it, while a
navigation the portal's own page starts is same-site.

The cookie is HTTP-only (no script reads it), ``SameSite=Strict`` (no other site's page
can make the browser send it), ``Secure`` whenever the request came over https, scoped
to the portal's path and expires with the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from worker.access.keys import key_is_live
from worker.portal.context import PortalContext, portal_of
from worker.portal.errors import CsrfRefused, ReadOnlySession, SessionRefused
from worker.portal.tokens import Session

COOKIE = "catentio_portal"
"""The session cookie's name."""

CSRF_FIELD = "csrf_token"
"""The hidden form field carrying the CSRF token."""

CSRF_HEADER = "x-csrf-token"
"""The header htmx requests carry the CSRF token in."""


def portal_path(request: Request) -> str:
    """The path the portal is mounted at, ending in ``/``."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/") + "/"


def current_session(request: Request) -> Session:
    """The request's portal session. Raises ``SessionRefused``, also for a session
    opened with an API key that has been revoked since."""
    portal = portal_of(request)
    session = portal.tokens.session(request.cookies.get(COOKIE), now=portal.clock())
    if session.key_id is not None:
        with portal.sessions() as db:
            live = key_is_live(db, session.key_id)
        if not live:
            raise SessionRefused("the API key this session was opened with was revoked")
    return session


def open_link(request: Request) -> Response:
    """``GET /open?token=…``: check the link, start a session, go to the portal."""
    portal = portal_of(request)
    grant = portal.tokens.open_link(request.query_params.get("token", ""), now=portal.clock())
    cookie, _ = portal.tokens.open_session(
        grant, ttl=portal.settings.portal_session_ttl, now=portal.clock()
    )
    response = portal.renderer.page(
        request, "opening.html", {"target": portal_path(request), "opening": grant.workspace_id}
    )
    set_session_cookie(request, response, cookie, portal)
    return response


def set_session_cookie(
    request: Request, response: Response, value: str, portal: PortalContext
) -> None:
    """Attach the session cookie to ``response``."""
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(portal.settings.portal_session_ttl.total_seconds()),
        path=portal_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def log_out(request: Request, form: Mapping[str, str]) -> Response:
    """``POST /logout``: forget the session cookie."""
    check_write(request, current_session(request), form, allow_read_only=True)
    response: Response = RedirectResponse(portal_path(request) + "signed-out", status_code=303)
    response.delete_cookie(COOKIE, path=portal_path(request))
    return response


def signed_out(request: Request) -> HTMLResponse:
    """The page after logging out."""
    return portal_of(request).renderer.page(request, "signed_out.html", {})


def check_same_site(request: Request) -> None:
    """Refuse a request another site's page sent (``Origin``, ``Sec-Fetch-Site``)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        parts = urlsplit(origin)
        if parts.netloc != request.headers.get("host", ""):
            raise CsrfRefused("this request comes from another site")
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CsrfRefused("this request comes from another site")


def check_write(
    request: Request,
    session: Session,
    form: Mapping[str, str],
    *,
    allow_read_only: bool = False,
) -> None:
    """Refuse a state-changing request that is cross-site, lacks the session's CSRF
    token, or comes from a read-only session."""
    check_same_site(request)
    token = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    portal_of(request).tokens.check_csrf(session, token)
    if session.grant.read_only and not allow_read_only:
        raise ReadOnlySession("this portal link is read-only: it can look but not act")


__all__ = ["COOKIE", "SessionRefused", "check_write", "current_session", "open_link"]
