"""The worker's errors: its branches of the one error tree rooted in ``outbox.errors``.

One ``except CatentioError`` still catches everything of ours. The messages say what is
wrong, never which command or flag would fix it: each door (the command line, the HTTP
API) adds its own advice, using the attributes some of these carry::

    CatentioError                       outbox.errors
    ├── ValidationError                 outbox.errors: bad input; nothing was written
    │   ├── (publish's own leaves)      outbox.errors: event type, workspace, payload, key
    │   ├── InvalidEventFilter          an endpoint filter that is not TYPE, PREFIX.* or *
    │   ├── InvalidPayloadFilter        a payload filter that is not a valid predicate
    │   ├── InvalidEndpointURL          not http/https, userinfo, no host, too long
    │   ├── InvalidDuration             "5s", "2h", "3d" and the like, or ISO times
    │   ├── InvalidCursor               not an id of the kind a page hands out
    │   ├── InvalidWindow               a time window that ends before it starts
    │   └── NothingToUpdate             an endpoint change that changes nothing
    ├── NotFound                        no row with that id
    │   ├── EndpointNotFound
    │   ├── EventNotFound
    │   ├── DeliveryNotFound
    │   └── ReplayNotFound              no bulk replay run with that id
    ├── Conflict                        refused in the row's current state
    │   ├── EndpointDisabled            a replay to a disabled endpoint
    │   ├── EndpointsDisabled           every delivery of an event goes to a disabled one
    │   └── DeliveriesPending           deleting an endpoint whose deliveries still wait
    ├── ConfigurationError              settings that cannot work (``worker.settings``)
    ├── OwnFailure                      our side failed; never spends a receiver's attempt
    │   ├── DatabaseUnavailable
    │   ├── BrokerUnavailable
    │   └── SchemaNotReady              the schema is not (yet) the one this code needs
    ├── SendError                       the request got no usable response
    │                                   (``worker.http.errors``: its own tree)
    ├── AccessError                     an API caller may not do this
    │                                   (``worker.access.errors``: its own tree)
    └── PortalError                     the portal refuses a link, session or request
                                        (``worker.portal.errors``: its own tree)

The receiver's failures (timeouts, refused connections, bad statuses) are not raised
past a delivery: ``worker.policy.outcomes`` classifies them as outcomes.
"""

from __future__ import annotations

from outbox.errors import CatentioError, ValidationError


class InvalidEventFilter(ValidationError):
    """An endpoint event filter is not ``TYPE``, ``PREFIX.*`` or ``*``."""


class InvalidPayloadFilter(ValidationError):
    """A payload filter that is not a valid predicate (the message says where)."""


class InvalidEndpointURL(ValidationError):
    """The endpoint URL is not an acceptable http(s) URL."""


class InvalidDuration(ValidationError):
    """A duration or point in time could not be parsed."""


class InvalidCursor(ValidationError):
    """A page cursor is not an id of the kind the previous page handed out."""


class InvalidWindow(ValidationError):
    """A time window ends before (or when) it starts."""


class NothingToUpdate(ValidationError):
    """An endpoint change names no field to change."""


class NotFound(CatentioError, LookupError):
    """No row with the given id exists."""


class EndpointNotFound(NotFound):
    """No endpoint with that id."""


class EventNotFound(NotFound):
    """No event with that id."""


class DeliveryNotFound(NotFound):
    """No delivery with that id."""


class ReplayNotFound(NotFound):
    """No bulk replay run with that id."""


class Conflict(CatentioError):
    """The operation is refused in the row's current state."""


class EndpointDisabled(Conflict):
    """The endpoint is disabled: what was asked of it (a replay) would only be skipped."""

    def __init__(self, message: str, *, endpoint_id: str) -> None:
        super().__init__(message)
        self.endpoint_id = endpoint_id


class EndpointsDisabled(Conflict):
    """Every delivery of the event goes to a disabled endpoint."""

    def __init__(self, message: str, *, event_id: str) -> None:
        super().__init__(message)
        self.event_id = event_id


class DeliveriesPending(Conflict):
    """The endpoint still has pending deliveries, which deleting it would never send."""

    def __init__(self, message: str, *, endpoint_id: str, pending: int) -> None:
        super().__init__(message)
        self.endpoint_id = endpoint_id
        self.pending = pending


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
