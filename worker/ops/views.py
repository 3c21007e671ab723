"""Rows as plain dicts, for ``--json`` output and tables. Never a secret."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from outbox.envelope import isoformat
from outbox.models import Attempt, Delivery, Endpoint, Event
from worker.ops.activity import Activity


def _time(value: datetime | None) -> str | None:
    return isoformat(value) if value is not None else None


def endpoint_view(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint without its secrets (only how many are active)."""
    return {
        "id": endpoint.id,
        "workspace_id": endpoint.workspace_id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "scheme": endpoint.scheme,
        "secrets": len(endpoint.secrets),
        "header_names": sorted(endpoint.headers),
        "filter": endpoint.filter,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": _time(endpoint.disabled_at),
        "paused": endpoint.paused,
        "max_concurrency": endpoint.max_concurrency,
        "rate_limit": endpoint.rate_limit,
        "ordering": "fifo" if endpoint.ordering == "fifo" else "parallel",
        "consecutive_failures": endpoint.consecutive_failures,
        "failing_since": _time(endpoint.failing_since),
        "last_success_at": _time(endpoint.last_success_at),
        "last_failure_at": _time(endpoint.last_failure_at),
        "created_at": _time(endpoint.created_at),
    }


def event_view(event: Event, *, with_body: bool = False) -> dict[str, Any]:
    """An outbox event; ``with_body`` adds the exact body and its parsed form."""
    view: dict[str, Any] = {
        "id": event.id,
        "workspace_id": event.workspace_id,
        "type": event.type,
        "idempotency_key": event.idempotency_key,
        "request_id": event.request_id,
        "created_at": _time(event.created_at),
        "dispatched_at": _time(event.dispatched_at),
        "body_bytes": len(event.body.encode("utf-8")),
    }
    if with_body:
        view["body"] = event.body
        view["data"] = json.loads(event.body)["data"]["data"]
    return view


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    """A delivery's state."""
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "endpoint_id": delivery.endpoint_id,
        "workspace_id": delivery.workspace_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempt_count,
        "cycle_attempts": delivery.cycle_attempts,
        "next_trigger": delivery.next_trigger,
        "next_attempt_at": _time(delivery.next_attempt_at),
        "held_by": delivery.held_by,
        "leased_until": _time(delivery.lease_until),
        "last_status_code": delivery.last_status_code,
        "last_error_kind": delivery.last_error_kind,
        "last_error": delivery.last_error,
        "created_at": _time(delivery.created_at),
        "completed_at": _time(delivery.completed_at),
    }


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    """One attempt: what we sent (no secret) and what came back."""
    return {
        "id": attempt.id,
        "number": attempt.number,
        "trigger": attempt.trigger,
        "url": attempt.url,
        "started_at": _time(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "outcome": attempt.outcome,
        "response_status": attempt.response_status,
        "error_kind": attempt.error_kind,
        "error": attempt.error,
        "request_headers": attempt.request_headers,
        "response_headers": attempt.response_headers,
        "response_body": attempt.response_body,
        "response_truncated": attempt.response_truncated,
    }


def activity_view(activity: Activity) -> dict[str, Any]:
    """An endpoint's recent success rates and backlog."""
    return {
        "success_rate_hour": activity.success_rate_hour,
        "attempts_hour": activity.attempts_hour,
        "success_rate_day": activity.success_rate_day,
        "attempts_day": activity.attempts_day,
        "pending": activity.pending,
        "in_flight": activity.in_flight,
    }


def endpoint_state(endpoint: Endpoint) -> str:
    """``disabled``, ``paused`` or ``enabled``."""
    if not endpoint.enabled:
        return "disabled"
    return "paused" if endpoint.paused else "enabled"


def endpoint_health_view(endpoint: Endpoint, activity: Activity) -> dict[str, Any]:
    """An endpoint with its recent activity and its state in one word."""
    return {**endpoint_view(endpoint), **activity_view(activity), "state": endpoint_state(endpoint)}


def fanout_text(statuses: dict[str, int]) -> str:
    """``{"succeeded": 2, "failed": 1}`` → ``"failed 1, succeeded 2"`` ("-": none)."""
    return ", ".join(f"{status} {count}" for status, count in sorted(statuses.items())) or "-"
