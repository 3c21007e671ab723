"""Signing in with an API key, for operators: ``GET /login`` shows the form, ``POST
/login`` checks the key with :mod:`worker.access` (as the API does) and opens a session.

Which session a key opens:

- a workspace's key: that workspace (naming another one in the form is refused);
- an all-workspaces (admin) key: the workspace the form names, which it must name;
- a ``read`` key: a read-only session, which sees everything and changes nothing.

An unknown, revoked or mistyped key gets one answer that does not say which. The
session remembers the key's id and ends as soon as the key is revoked (checked on every
request, see :func:`worker.portal.access.current_session`).

The form is protected against login CSRF (another site signing the browser in to a
session of its choosing): the form page sets a short-lived ``SameSite=Strict`` cookie
holding a random nonce, the form carries a token signed for that nonce, and the POST
needs both, from this origin.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import timedelta

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from outbox.errors import CatentioError
from worker.access.errors import AuthenticationFailed
from worker.access.keys import authenticate
from worker.access.principal import Scope
from worker.portal.access import (
    COOKIE,
    CSRF_FIELD,
    check_same_site,
    portal_path,
    set_session_cookie,
)
from worker.portal.context import portal_of
from worker.portal.errors import CsrfRefused
from worker.portal.tokens import Grant

log = structlog.get_logger("worker.portal.login")

LOGIN_COOKIE = "catentio_portal_login"
"""The cookie holding the sign-in form's nonce."""

LOGIN_FORM_TTL = timedelta(minutes=30)
"""How long a sign-in form can be submitted after it was shown."""

MAX_KEY_CHARS = 200
"""Longer input is not an API key (``cat_ak_`` + 43 characters)."""

REFUSED = "This API key cannot sign in: it is unknown, revoked or mistyped."
"""The one answer for every key that does not check out."""


def login_page(request: Request) -> Response:
    """``GET /login``: the form, with a fresh nonce cookie and its token."""
    return _form(request)


def _form(
    request: Request,
    *,
    error: str | None = None,
    workspace: str = "",
    status_code: int = 200,
) -> Response:
    portal = portal_of(request)
    nonce = secrets.token_urlsafe(18)
    context = {
        "login_token": portal.tokens.login_token(nonce),
        "csrf_field": CSRF_FIELD,
        "error": error,
        "workspace_value": workspace,
    }
    response = portal.renderer.page(request, "login.html", context, status_code=status_code)
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=int(LOGIN_FORM_TTL.total_seconds()),
        path=portal_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


def log_in(request: Request, form: Mapping[str, str]) -> Response:
    """``POST /login``: check the form's token and the key, then start the session the
    key allows and go to the portal."""
    portal = portal_of(request)
    check_same_site(request)
    workspace = form.get("workspace", "").strip()[:100]
    try:
        portal.tokens.check_login(request.cookies.get(LOGIN_COOKIE), form.get(CSRF_FIELD))
    except CsrfRefused:
        log.info("portal.login_refused", reason="form")
        return _form(
            request,
            error="This sign-in form has expired or was not sent from this page: try again.",
            workspace=workspace,
            status_code=403,
        )
    key = form.get("api_key", "").strip()
    now = portal.clock()
    try:
        if len(key) > MAX_KEY_CHARS:
            raise AuthenticationFailed("too long to be a key")
        principal = authenticate(portal.sessions, key, now=now)
    except AuthenticationFailed:
        log.info("portal.login_refused", reason="key")
        return _form(request, error=REFUSED, workspace=workspace, status_code=401)
    if principal.is_admin and not workspace:
        return _form(
            request,
            error="This key acts for every workspace: name the workspace to open.",
            status_code=400,
        )
    try:
        workspace_id = principal.workspace(workspace or None)
    except CatentioError as exc:
        log.info("portal.login_refused", reason="workspace", key_id=principal.key_id)
        return _form(request, error=f"{exc}.", workspace=workspace, status_code=403)
    ttl = portal.settings.portal_session_ttl
    grant = Grant(workspace_id, principal.scope is not Scope.WRITE, now + ttl)
    cookie, _ = portal.tokens.open_session(grant, ttl=ttl, now=now, key_id=principal.key_id)
    response = RedirectResponse(portal_path(request), status_code=303)
    set_session_cookie(request, response, cookie, portal)
    response.delete_cookie(LOGIN_COOKIE, path=portal_path(request))
    log.info(
        "portal.login",
        workspace_id=workspace_id,
        key_id=principal.key_id,
        read_only=grant.read_only,
    )
    return response


__all__ = ["COOKIE", "LOGIN_COOKIE", "log_in", "login_page"]
