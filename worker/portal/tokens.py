"""Portal links and portal sessions: signed, expiring, single-workspace tokens.

A *link* token is minted by ``portal link`` (or the API) and travels in a URL; opening
it turns it into a *session* token, which travels only in an HTTP-only cookie. Both are
``itsdangerous`` serializations (HMAC-SHA512 over a compact JSON payload) with separate
salts, so a link can never be replayed as a session cookie nor the other way round. The
expiry is an explicit field checked against an injected clock (not the signer's own
timestamp), so a test can move time and a link can be given any lifetime.

The CSRF token of a session is derived from the session's random id with a third salt:
it cannot be forged without the secret and changes with every session. The sign-in form
(an operator's API key, :mod:`worker.portal.login`) has no session yet: its token is
derived, with a fourth salt, from a random nonce kept in a cookie of its own. A session
opened with an API key carries the key's id, so that revoking the key ends it.

Secrets are given newest first (``CATENTIO_PORTAL_SECRET=new,old``): the newest signs,
all of them verify, so a secret can be rotated without cutting open sessions.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadData, URLSafeSerializer

from outbox.errors import ValidationError
from outbox.validation import check_workspace_id
from worker.errors import ConfigurationError
from worker.portal.errors import CsrfRefused, LinkExpired, LinkRefused, SessionRefused

LINK_SALT = "catentio-portal-link"
SESSION_SALT = "catentio-portal-session"
CSRF_SALT = "catentio-portal-csrf"
LOGIN_SALT = "catentio-portal-login"

MIN_SECRET_CHARS = 32
"""A shorter portal secret is refused: it signs every session of every workspace."""


@dataclass(frozen=True)
class Grant:
    """What a link or a session allows: one workspace, read-only or not, until when."""

    workspace_id: str
    read_only: bool
    expires_at: datetime


@dataclass(frozen=True)
class Session:
    """An opened portal session (what its cookie says)."""

    grant: Grant
    session_id: str
    key_id: str | None = None
    """The API key it was opened with (None: opened by a link)."""


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def _moment(value: Any) -> datetime:
    if not isinstance(value, int):
        raise BadData("expiry is not an integer")
    return datetime.fromtimestamp(value, UTC)


class Tokens:
    """Mints and checks link, session and CSRF tokens with the portal secrets."""

    def __init__(self, secrets_newest_first: Sequence[str]) -> None:
        if not secrets_newest_first:
            raise ConfigurationError("the portal needs a secret (CATENTIO_PORTAL_SECRET)")
        for secret in secrets_newest_first:
            if len(secret) < MIN_SECRET_CHARS:
                raise ConfigurationError(
                    f"CATENTIO_PORTAL_SECRET values must be at least {MIN_SECRET_CHARS} "
                    "characters (make one with `catentio-webhooks secrets generate-key`)"
                )
        # itsdangerous signs with the last key of the list and verifies with any.
        keys = list(reversed(secrets_newest_first))
        self._links = URLSafeSerializer(keys, salt=LINK_SALT)
        self._sessions = URLSafeSerializer(keys, salt=SESSION_SALT)
        self._csrf = URLSafeSerializer(keys, salt=CSRF_SALT)
        self._login = URLSafeSerializer(keys, salt=LOGIN_SALT)

    # Links ---------------------------------------------------------------------------

    def mint_link(
        self, workspace_id: str, *, ttl: timedelta, read_only: bool, now: datetime
    ) -> tuple[str, Grant]:
        """A link token for ``workspace_id`` that can be opened until ``now + ttl``."""
        check_workspace_id(workspace_id)
        if ttl <= timedelta(0):
            raise ValidationError("a portal link needs a positive lifetime")
        grant = Grant(workspace_id, read_only, now + ttl)
        payload = {"ws": workspace_id, "ro": read_only, "exp": _timestamp(grant.expires_at)}
        return str(self._links.dumps(payload)), grant

    def open_link(self, token: str, *, now: datetime) -> Grant:
        """The grant of a link token. Raises ``LinkRefused`` or ``LinkExpired``."""
        try:
            payload = self._links.loads(token)
            grant = _grant(payload)
        except BadData:
            raise LinkRefused("this portal link is not valid") from None
        if grant.expires_at <= now:
            raise LinkExpired("this portal link has expired; ask for a new one")
        return grant

    # Sessions ------------------------------------------------------------------------

    def open_session(
        self, link: Grant, *, ttl: timedelta, now: datetime, key_id: str | None = None
    ) -> tuple[str, Session]:
        """A session cookie value for the workspace of ``link``, lasting ``ttl``;
        ``key_id``: the API key it is opened with."""
        grant = Grant(link.workspace_id, link.read_only, now + ttl)
        session = Session(grant, secrets.token_urlsafe(18), key_id)
        payload: dict[str, Any] = {
            "ws": grant.workspace_id,
            "ro": grant.read_only,
            "exp": _timestamp(grant.expires_at),
            "sid": session.session_id,
        }
        if key_id is not None:
            payload["kid"] = key_id
        return str(self._sessions.dumps(payload)), session

    def session(self, cookie: str | None, *, now: datetime) -> Session:
        """The session a cookie value stands for. Raises ``SessionRefused``."""
        if not cookie:
            raise SessionRefused("no portal session: open a portal link first")
        try:
            payload = self._sessions.loads(cookie)
            grant = _grant(payload)
            session_id, key_id = payload["sid"], payload.get("kid")
            if not isinstance(session_id, str) or not isinstance(key_id, str | None):
                raise BadData("session or key id is not a string")
        except (BadData, KeyError, TypeError):
            raise SessionRefused("this portal session is not valid: open a portal link") from None
        if grant.expires_at <= now:
            raise SessionRefused("this portal session has expired: open a new portal link")
        return Session(grant, session_id, key_id)

    # CSRF ----------------------------------------------------------------------------

    def csrf_token(self, session: Session) -> str:
        """The token every state-changing request of ``session`` must carry."""
        return str(self._csrf.dumps(session.session_id))

    def login_token(self, nonce: str) -> str:
        """The token the sign-in form carries, bound to its nonce cookie."""
        return str(self._login.dumps(nonce))

    def check_login(self, nonce: str | None, token: str | None) -> None:
        """Raise ``CsrfRefused`` unless ``token`` was made for the form's ``nonce``."""
        if not nonce or not token:
            raise CsrfRefused("this sign-in form is missing its token; reload the page")
        try:
            bound = self._login.loads(token)
        except BadData:
            raise CsrfRefused("this sign-in form's token is not valid; reload the page") from None
        if not isinstance(bound, str) or not hmac.compare_digest(bound, nonce):
            raise CsrfRefused("this sign-in form's token belongs to another form")

    def check_csrf(self, session: Session, token: str | None) -> None:
        """Raise ``CsrfRefused`` unless ``token`` belongs to ``session``."""
        if not token:
            raise CsrfRefused("this request is missing its CSRF token; reload the page")
        try:
            bound = self._csrf.loads(token)
        except BadData:
            raise CsrfRefused("this request's CSRF token is not valid; reload the page") from None
        if not isinstance(bound, str) or not hmac.compare_digest(bound, session.session_id):
            raise CsrfRefused("this request's CSRF token belongs to another session")


def _grant(payload: Any) -> Grant:
    if not isinstance(payload, dict):
        raise BadData("payload is not an object")
    workspace_id, read_only = payload.get("ws"), payload.get("ro")
    if not isinstance(workspace_id, str) or not isinstance(read_only, bool):
        raise BadData("payload fields have the wrong types")
    return Grant(workspace_id, read_only, _moment(payload.get("exp")))
