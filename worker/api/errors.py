"""The API's errors: a stable code, an HTTP status, a message and the field at fault.

``api_error_for`` is the one place where the domain's errors (``outbox.errors``,
``worker.access.errors``) become API errors; anything else is ``INTERNAL`` and its
details stay in the log, never in the response.
"""

from __future__ import annotations

from enum import StrEnum

from outbox.errors import CatentioError, IdempotencyKeyConflict, PayloadTooLarge, ValidationError
from worker.access.errors import AuthenticationFailed, PermissionDenied
from worker.errors import Conflict, NotFound, OwnFailure


class Code(StrEnum):
    """The stable error codes every Catentio API shares."""

    VALIDATION_ERROR = "VALIDATION_ERROR"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    RATE_LIMITED = "RATE_LIMITED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    INTERNAL = "INTERNAL"


STATUS = {
    Code.VALIDATION_ERROR: 422,
    Code.UNAUTHENTICATED: 401,
    Code.FORBIDDEN: 403,
    Code.NOT_FOUND: 404,
    Code.CONFLICT: 409,
    Code.IDEMPOTENCY_KEY_REUSED: 422,
    Code.RATE_LIMITED: 429,
    Code.PAYLOAD_TOO_LARGE: 413,
    Code.INTERNAL: 500,
}
"""The HTTP status of each code."""


class ApiError(Exception):
    """An error answered in the envelope: ``{"code", "message", "field"}``."""

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = STATUS[code] if status is None else status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


def api_error_for(exc: CatentioError, *, field: str | None = None) -> ApiError:
    """The API error for a domain error; ``field`` names the input it concerns."""
    message = str(exc)
    if isinstance(exc, PayloadTooLarge):
        return ApiError(Code.PAYLOAD_TOO_LARGE, message, field=field)
    if isinstance(exc, IdempotencyKeyConflict):
        return ApiError(Code.IDEMPOTENCY_KEY_REUSED, message, field="Idempotency-Key")
    if isinstance(exc, ValidationError):
        return ApiError(Code.VALIDATION_ERROR, message, field=field)
    if isinstance(exc, NotFound):
        return ApiError(Code.NOT_FOUND, message)
    if isinstance(exc, Conflict):
        return ApiError(Code.CONFLICT, message)
    if isinstance(exc, AuthenticationFailed):
        return ApiError(Code.UNAUTHENTICATED, message, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, PermissionDenied):
        return ApiError(Code.FORBIDDEN, message)
    if isinstance(exc, OwnFailure):
        # Our own outage: 503, so clients retry; the code stays one of the stable set.
        return ApiError(Code.INTERNAL, message, status=503)
    return ApiError(Code.INTERNAL, "internal error")
