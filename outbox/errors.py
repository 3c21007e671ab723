"""The producer's errors: what ``publish()`` refuses.

Every error this project raises on purpose descends from :class:`CatentioError`, so a
caller can catch all of ours in one ``except`` and none of anyone else's. A producer
only ever sees this part of the tree::

    CatentioError                    the root (the worker's errors descend from it too)
    └── ValidationError              bad input from a caller; nothing was written
        ├── InvalidEventType         not dot-separated [a-z0-9_] segments, or too long
        ├── InvalidWorkspaceId       empty, too long, or outside [A-Za-z0-9_-]
        ├── PayloadNotJSON           ``data`` cannot be rendered as a JSON object
        ├── PayloadTooLarge          the rendered body is over the size limit
        └── IdempotencyKeyConflict   the key was used before for another event type

The worker adds its branches (not found, conflicts, configuration, its own failures,
send errors) in ``worker.errors``. The receiver-side verification errors live in
``catentio_signing`` (``WebhookVerificationError``), which is a standalone
distribution and cannot depend on this package.
"""

from __future__ import annotations


class CatentioError(Exception):
    """Root of every error Catentio Webhooks raises on purpose."""


class ValidationError(CatentioError, ValueError):
    """Bad input from a caller. Nothing was written."""


class InvalidEventType(ValidationError):
    """The event type is not dot-separated ``[a-z0-9_]`` segments."""


class InvalidWorkspaceId(ValidationError):
    """The workspace id is empty, too long or has characters outside ``[A-Za-z0-9_-]``."""


class PayloadNotJSON(ValidationError):
    """``data`` cannot be rendered as a JSON object."""


class PayloadTooLarge(ValidationError):
    """The rendered body is larger than the configured limit."""


class IdempotencyKeyConflict(ValidationError):
    """The idempotency key was already used in this workspace for another event type."""
