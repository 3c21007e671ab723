"""The access errors (the tree is drawn in the package docstring)."""

from __future__ import annotations

from outbox.errors import CatentioError


class AccessError(CatentioError):
    """The caller may not do this."""


class AuthenticationFailed(AccessError):
    """No credential was given, or it matches no live key."""


class PermissionDenied(AccessError):
    """The key is valid, but its scope or workspace does not allow the request."""
