"""The one error hierarchy of Catentio Webhooks.

Every error this project raises on purpose descends from :class:`CatentioError`, so a
caller can catch all of ours in one ``except`` and none of anyone else's::

    CatentioError
    ├── ValidationError              bad input from a caller; nothing was written
    │   ├── InvalidEventType         not dot-separated [a-z0-9_] segments, or too long
    │   ├── InvalidEventFilter       an endpoint filter that is not TYPE, PREFIX.* or *
    │   ├── InvalidWorkspaceId
    │   ├── InvalidEndpointURL       not http/https, userinfo, no host, too long
    │   ├── PayloadNotJSON           ``data`` cannot be rendered as a JSON object
    │   ├── PayloadTooLarge          the rendered body is over the size limit
    │   ├── IdempotencyKeyConflict   the key was used before for another event type
    │   └── InvalidDuration          "5s", "2h", "3d" and the like, or ISO times
    ├── NotFound                     no row with that id
    │   ├── EndpointNotFound
    │   ├── EventNotFound
    │   └── DeliveryNotFound
    ├── Conflict                     the operation is refused in the row's current state
    ├── ConfigurationError           settings that cannot work (worker/settings.py)
    └── OwnFailure                   our side failed; never spends a receiver's attempt
        ├── DatabaseUnavailable
        ├── BrokerUnavailable
        └── SchemaNotReady           the schema is not (yet) the one this code needs

The receiver's failures (timeouts, refused connections, bad statuses) are not exceptions
of this tree: ``worker.outcome`` classifies them as delivery outcomes. The receiver-side
verification errors live in ``catentio_signing`` (``WebhookVerificationError``), which is
a standalone distribution and cannot depend on this package.
"""

from __future__ import annotations


class CatentioError(Exception):
    """Root of every error Catentio Webhooks raises on purpose."""


class ValidationError(CatentioError, ValueError):
    """Bad input from a caller. Nothing was written."""


class InvalidEventType(ValidationError):
    """The event type is not dot-separated ``[a-z0-9_]`` segments."""


class InvalidEventFilter(ValidationError):
    """An endpoint event filter is not ``TYPE``, ``PREFIX.*`` or ``*``."""


class InvalidWorkspaceId(ValidationError):
    """The workspace id is empty, too long or has characters outside ``[A-Za-z0-9_-]``."""


class InvalidEndpointURL(ValidationError):
    """The endpoint URL is not an acceptable http(s) URL."""


class PayloadNotJSON(ValidationError):
    """``data`` cannot be rendered as a JSON object."""


class PayloadTooLarge(ValidationError):
    """The rendered body is larger than the configured limit."""


class IdempotencyKeyConflict(ValidationError):
    """The idempotency key was already used in this workspace for another event type."""


class InvalidDuration(ValidationError):
    """A duration or point in time could not be parsed."""


class NotFound(CatentioError, LookupError):
    """No row with the given id exists."""


class EndpointNotFound(NotFound):
    """No endpoint with that id."""


class EventNotFound(NotFound):
    """No event with that id."""


class DeliveryNotFound(NotFound):
    """No delivery with that id."""


class Conflict(CatentioError):
    """The operation is refused in the row's current state."""


class ConfigurationError(CatentioError):
    """The settings cannot work as given."""


class OwnFailure(CatentioError):
    """Our own side failed (database, broker). A receiver's attempt is never spent on it."""


class DatabaseUnavailable(OwnFailure):
    """The database could not be reached or refused the operation."""


class BrokerUnavailable(OwnFailure):
    """The message broker could not be reached."""


class SchemaNotReady(OwnFailure):
    """The database schema is not the one this code needs (not migrated yet, or
    migrated by newer code, or another application's)."""
