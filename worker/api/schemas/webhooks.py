"""``/v1/webhooks``: an endpoint as the API shows it, and what creating or changing one takes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from outbox.models import Endpoint
from worker.api.envelope import Shape
from worker.api.schemas.common import Timestamp, stamp

EventTypes = Annotated[
    list[Annotated[str, Field(max_length=130)]],
    Field(
        min_length=1,
        max_length=100,
        description="Event types to receive: exact (`run.succeeded`), a prefix (`run.*`) or `*`.",
        examples=[["run.succeeded", "project.*"]],
    ),
]
Scheme = Literal["v1", "v1a"]
Filter = Annotated[
    dict[str, Any],
    Field(
        description="A predicate over the event's `data` (see the README's payload "
        "filters); only matching events are delivered.",
        examples=[{"and": [{"eq": ["status", "failed"]}, {"gt": ["attempt", 2]}]}],
    ),
]


class EndpointState(StrEnum):
    """``disabled``: gets nothing (deliveries end skipped); ``paused``: deliveries wait."""

    ENABLED = "enabled"
    PAUSED = "paused"
    DISABLED = "disabled"


Ordering = Annotated[
    Literal["fifo", "parallel"],
    Field(
        description="`fifo`: one delivery in flight at a time, in event order (a failing "
        "one blocks those behind it until it succeeds, is exhausted or is skipped); "
        "`parallel`: up to the endpoint's concurrency limit, in no promised order."
    ),
]


class EndpointHealth(Shape):
    """How the endpoint has been answering."""

    consecutive_failures: int
    failing_since: Timestamp | None
    last_success_at: Timestamp | None
    last_failure_at: Timestamp | None


class Webhook(Shape):
    """A registered endpoint. Its secrets are never shown, only how many sign."""

    id: str
    workspace_id: str
    url: str
    description: str | None
    event_types: list[str]
    filter: dict[str, Any] | None
    scheme: Scheme
    header_names: list[str] = Field(description="Custom headers sent (values not shown).")
    max_concurrency: int | None
    rate_limit: float | None
    ordering: Ordering
    state: EndpointState
    disabled_reason: str | None
    disabled_at: Timestamp | None
    active_secrets: int
    health: EndpointHealth
    created_at: Timestamp
    updated_at: Timestamp


class WebhookWithSecret(Webhook):
    """An endpoint just created or rotated: ``secret`` is shown this once."""

    secret: str = Field(
        description="`whsec_…` (v1) or the receiver's `whpk_…` public key (v1a); "
        "shown only in this response."
    )


class WebhookCreate(Shape):
    """Register an endpoint."""

    url: Annotated[str, Field(max_length=2048, examples=["https://example.com/hooks"])]
    event_types: EventTypes
    description: Annotated[str, Field(max_length=1000)] | None = None
    scheme: Scheme = "v1"
    headers: Annotated[dict[str, Annotated[str, Field(max_length=4096)]], Field(max_length=50)] = {}
    max_concurrency: Annotated[int, Field(ge=1, le=10_000)] | None = None
    rate_limit: Annotated[float, Field(gt=0, le=100_000)] | None = None
    filter: Filter | None = None
    ordering: Ordering = "parallel"


class WebhookUpdate(Shape):
    """Change an endpoint: every field given is set; ``filter: null`` removes the filter,
    ``maxConcurrency``/``rateLimit`` null restore the defaults."""

    url: Annotated[str, Field(max_length=2048)] | None = None
    event_types: EventTypes | None = None
    description: Annotated[str, Field(max_length=1000)] | None = None
    headers: (
        Annotated[dict[str, Annotated[str, Field(max_length=4096)]], Field(max_length=50)] | None
    ) = None
    max_concurrency: Annotated[int, Field(ge=1, le=10_000)] | None = None
    rate_limit: Annotated[float, Field(gt=0, le=100_000)] | None = None
    filter: Filter | None = None
    ordering: Ordering | None = None


class RotateSecret(Shape):
    """Rotate the signing secret; the replaced ones keep signing for ``graceSeconds``."""

    grace_seconds: Annotated[int, Field(ge=0, le=30 * 86400)] = 86400
    scheme: Scheme | None = None


class Deleted(Shape):
    """What a delete removed."""

    id: str
    deleted: bool
    deliveries_deleted: int


def state_of(endpoint: Endpoint) -> EndpointState:
    """enabled, paused or disabled."""
    if not endpoint.enabled:
        return EndpointState.DISABLED
    return EndpointState.PAUSED if endpoint.paused else EndpointState.ENABLED


def webhook_of(endpoint: Endpoint) -> Webhook:
    """The API's view of an endpoint row."""
    return Webhook(
        id=endpoint.id,
        workspace_id=endpoint.workspace_id,
        url=endpoint.url,
        description=endpoint.description,
        event_types=list(endpoint.event_types),
        filter=endpoint.filter,
        scheme="v1a" if endpoint.scheme == "v1a" else "v1",
        header_names=sorted(endpoint.headers),
        max_concurrency=endpoint.max_concurrency,
        rate_limit=endpoint.rate_limit,
        ordering="fifo" if endpoint.ordering == "fifo" else "parallel",
        state=state_of(endpoint),
        disabled_reason=endpoint.disabled_reason,
        disabled_at=stamp(endpoint.disabled_at),
        active_secrets=len(endpoint.secrets),
        health=EndpointHealth(
            consecutive_failures=endpoint.consecutive_failures,
            failing_since=stamp(endpoint.failing_since),
            last_success_at=stamp(endpoint.last_success_at),
            last_failure_at=stamp(endpoint.last_failure_at),
        ),
        created_at=stamp(endpoint.created_at) or "",
        updated_at=stamp(endpoint.updated_at) or "",
    )
