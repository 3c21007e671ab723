"""Why the portal refuses a request; each maps to one HTTP status and one page::

    CatentioError                 (outbox.errors)
    └── PortalError
        ├── LinkRefused           403: a portal link that is not ours, or altered
        │   └── LinkExpired       403: a genuine link opened after its expiry
        ├── SessionRefused        401: no session cookie, or one that is altered/expired
        ├── CsrfRefused           403: a state-changing request without its session's token
        └── ReadOnlySession       403: an action from a session opened by a read-only link

Not-found rows are the domain's ``NotFound`` (404), and another workspace's row is
reported exactly like a missing one.
"""

from __future__ import annotations

from outbox.errors import CatentioError


class PortalError(CatentioError):
    """The portal refuses the request."""

    status_code = 403


class LinkRefused(PortalError):
    """The link was not signed by us with a current secret, or was altered."""


class LinkExpired(LinkRefused):
    """The link is genuine but its time is up."""


class SessionRefused(PortalError):
    """The request carries no valid, unexpired session."""

    status_code = 401


class CsrfRefused(PortalError):
    """A state-changing request without the token bound to its session."""


class ReadOnlySession(PortalError):
    """The session was opened by a read-only link: it may look, not act."""
