"""Deliveries, their attempts, and replays, as the API shows them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field

from outbox.models import Attempt, Delivery, ReplayRun
from worker.api.envelope import Shape
from worker.api.schemas.common import Timestamp, stamp
from worker.ops.replay_runs import RunStatus

DeliveryStatusName = Literal["pending", "succeeded", "failed", "skipped"]
Replayable = Literal["succeeded", "failed", "skipped"]


class DeliveryOut(Shape):
    """One event to one endpoint: where it stands."""

    id: str
    event_id: str
    endpoint_id: str
    event_type: str
    status: DeliveryStatusName
    attempts: int
    next_attempt_at: Timestamp | None
    held_by: str | None = Field(description="Why it waits without spending an attempt.")
    last_status_code: int | None
    last_error_kind: str | None
    last_error: str | None
    created_at: Timestamp
    completed_at: Timestamp | None


class AttemptOut(Shape):
    """One HTTP try: what was sent (never a secret) and what came back (as stored)."""

    id: str
    number: int
    trigger: str
    url: str
    started_at: Timestamp
    duration_ms: float
    outcome: str
    request_headers: dict[str, str]
    response_status: int | None
    response_headers: dict[str, str] | None
    response_body: str | None
    response_truncated: bool
    error_kind: str | None
    error: str | None


class DeliveryDetail(DeliveryOut):
    """A delivery with every attempt, first to last."""

    attempt_history: list[AttemptOut]


class DeliveryReplayed(Shape):
    """A replayed delivery; ``reopened`` false: it was already pending."""

    reopened: bool
    delivery: DeliveryOut


class BulkReplayRequest(Shape):
    """Replay an endpoint's deliveries: by status (default failed and skipped), creation
    time window and event types. ``dryRun`` only counts."""

    status: Annotated[list[Replayable], Field(min_length=1, max_length=3)] = [
        "failed",
        "skipped",
    ]
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    type: Annotated[list[Annotated[str, Field(max_length=130)]], Field(max_length=50)] = []
    dry_run: bool = False


class ReplaySelection(Shape):
    """What a bulk replay selects."""

    statuses: list[str]
    types: list[str]
    since: Timestamp | None
    until: Timestamp | None


class ReplayRunOut(Shape):
    """A bulk replay and how far it got."""

    id: str
    endpoint_id: str
    status: RunStatus
    selection: ReplaySelection
    selected: int = Field(description="Deliveries selected when it started.")
    processed: int
    reopened: int
    error: str | None
    created_at: Timestamp
    updated_at: Timestamp
    finished_at: Timestamp | None


class BulkPreviewOut(Shape):
    """A dry run: how many deliveries a bulk replay would re-open, and the newest few."""

    dry_run: Literal[True]
    selected: int
    sample: list[DeliveryOut]


def delivery_of(delivery: Delivery) -> DeliveryOut:
    """The API's view of a delivery row."""
    return DeliveryOut(**_delivery_fields(delivery))


def _delivery_fields(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "endpoint_id": delivery.endpoint_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempt_count,
        "next_attempt_at": stamp(delivery.next_attempt_at),
        "held_by": delivery.held_by,
        "last_status_code": delivery.last_status_code,
        "last_error_kind": delivery.last_error_kind,
        "last_error": delivery.last_error,
        "created_at": stamp(delivery.created_at) or "",
        "completed_at": stamp(delivery.completed_at),
    }


def attempt_of(attempt: Attempt) -> AttemptOut:
    """The API's view of an attempt row."""
    return AttemptOut(
        id=attempt.id,
        number=attempt.number,
        trigger=attempt.trigger,
        url=attempt.url,
        started_at=stamp(attempt.started_at) or "",
        duration_ms=attempt.duration_ms,
        outcome=attempt.outcome,
        request_headers=attempt.request_headers,
        response_status=attempt.response_status,
        response_headers=attempt.response_headers,
        response_body=attempt.response_body,
        response_truncated=attempt.response_truncated,
        error_kind=attempt.error_kind,
        error=attempt.error,
    )


def delivery_detail_of(delivery: Delivery, attempts: list[Attempt]) -> DeliveryDetail:
    """A delivery with its attempts."""
    return DeliveryDetail(
        **_delivery_fields(delivery), attempt_history=[attempt_of(a) for a in attempts]
    )


def run_of(run: ReplayRun, status: RunStatus) -> ReplayRunOut:
    """The API's view of a replay run."""
    return ReplayRunOut(
        id=run.id,
        endpoint_id=run.endpoint_id,
        status=status,
        selection=ReplaySelection(**run.selection),
        selected=run.selected,
        processed=run.processed,
        reopened=run.reopened,
        error=run.error,
        created_at=stamp(run.created_at) or "",
        updated_at=stamp(run.updated_at) or "",
        finished_at=stamp(run.finished_at),
    )
