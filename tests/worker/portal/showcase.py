"""A day of history that looks like a real workspace's, for the screenshots: three
endpoints (healthy, failing through an outage, disabled), an event every few minutes
over the last 24 hours, and attempts with varied latency and outcomes."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert

from outbox import ids
from outbox.envelope import render
from outbox.models import Attempt, Delivery, DeliveryStatus, Endpoint, Event
from worker.runtime import Runtime

TYPES = ("run.succeeded", "run.failed", "subtask.failed", "project.paused")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def seed_showcase(
    runtime: Runtime, *, workspace_id: str = "ws_acme", events: int = 700
) -> dict[str, str]:
    """Insert the showcase; returns endpoint ids by name (``billing``, ``alerts``, ``legacy``)."""
    rng = random.Random(7)
    now = runtime.clock()
    secret = [
        {
            "secret": runtime.box.encrypt("whsec_c2hvd2Nhc2Utc2VjcmV0LXNob3djYXNl"),
            "expires_at": None,
        }
    ]
    endpoints = {
        "billing": ("https://billing.acme.example/webhooks/catentio", ["run.*"], True, 0),
        "alerts": ("https://alerts.acme.example/hooks", ["*"], True, 7),
        "legacy": ("https://old.acme.example/cgi-bin/hook", ["project.paused"], False, 0),
    }
    endpoint_rows, endpoint_ids = [], {}
    for name, (url, types, enabled, failures) in endpoints.items():
        created = now - timedelta(days=30)
        endpoint_ids[name] = ids.new_id(ids.ENDPOINT, now_ms=_ms(created))
        endpoint_rows.append(
            {
                "id": endpoint_ids[name],
                "workspace_id": workspace_id,
                "url": url,
                "description": {"billing": "Invoices", "alerts": "Pager", "legacy": None}[name],
                "event_types": types,
                "scheme": "v1",
                "secrets": secret,
                "headers": {"x-team": name} if name == "billing" else {},
                "enabled": enabled,
                "disabled_reason": None if enabled else "410 Gone from the receiver",
                "disabled_at": None if enabled else now - timedelta(hours=20),
                "paused": False,
                "consecutive_failures": failures,
                "failing_since": now - timedelta(minutes=40) if failures else None,
                "last_success_at": now - timedelta(minutes=41 if failures else 2),
                "created_at": created,
                "updated_at": created,
            }
        )
    event_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    attempt_rows: list[dict[str, Any]] = []
    for i in range(events):
        created = now - timedelta(minutes=(events - i) * 24 * 60 / events) + timedelta(seconds=5)
        event_type = TYPES[i % len(TYPES)]
        event_id = ids.new_id(ids.EVENT, now_ms=_ms(created))
        data = {
            "runId": f"run_{1000 + i}",
            "project": "checkout",
            "durationMs": rng.randint(800, 90_000),
        }
        event_rows.append(
            {
                "id": event_id,
                "workspace_id": workspace_id,
                "type": event_type,
                "body": render(
                    event_id=event_id,
                    event_type=event_type,
                    workspace_id=workspace_id,
                    created_at=created,
                    data=data,
                    request_id=f"req_{i:06d}",
                ),
                "created_at": created,
                "dispatched_at": created,
            }
        )
        for name, (url, types, enabled, _) in endpoints.items():
            if not any(t == "*" or t == event_type or event_type.startswith(t[:-1]) for t in types):
                continue
            age = now - created
            outage = name == "alerts" and (
                age < timedelta(minutes=40) or timedelta(hours=6) < age < timedelta(hours=7)
            )
            if not enabled and age < timedelta(hours=20):
                status, tries = DeliveryStatus.SKIPPED, []
            elif outage and age < timedelta(minutes=3):
                status, tries = DeliveryStatus.PENDING, [(503, "status", "retry")]
            elif outage:
                status, tries = (
                    DeliveryStatus.FAILED,
                    [(503, "status", "retry"), (None, "timeout", "failed")],
                )
            elif rng.random() < 0.04:
                status, tries = (
                    DeliveryStatus.SUCCEEDED,
                    [(500, "status", "retry"), (200, None, "succeeded")],
                )
            else:
                status, tries = DeliveryStatus.SUCCEEDED, [(200, None, "succeeded")]
            delivery_id = ids.new_id(ids.DELIVERY, now_ms=_ms(created))
            delivery_rows.append(
                {
                    "id": delivery_id,
                    "event_id": event_id,
                    "endpoint_id": endpoint_ids[name],
                    "workspace_id": workspace_id,
                    "event_type": event_type,
                    "status": status,
                    "attempt_count": len(tries),
                    "cycle_attempts": len(tries),
                    "next_trigger": "scheduled",
                    "next_attempt_at": now + timedelta(minutes=5)
                    if status == DeliveryStatus.PENDING
                    else None,
                    "last_status_code": tries[-1][0] if tries else None,
                    "last_error_kind": tries[-1][1] if tries else None,
                    "created_at": created,
                    "updated_at": created,
                    "completed_at": None
                    if status == DeliveryStatus.PENDING
                    else created + timedelta(seconds=30),
                }
            )
            base_latency = {"billing": 120, "alerts": 300, "legacy": 900}[name]
            for number, (code, kind, outcome) in enumerate(tries, start=1):
                started = created + timedelta(seconds=1 + 5 * (number - 1))
                duration = 5000.0 if kind == "timeout" else base_latency * rng.uniform(0.5, 1.8)
                attempt_rows.append(
                    {
                        "id": ids.new_id(ids.ATTEMPT, now_ms=_ms(started)),
                        "delivery_id": delivery_id,
                        "number": number,
                        "trigger": "scheduled",
                        "url": url,
                        "started_at": started,
                        "duration_ms": round(duration, 1),
                        "request_headers": {
                            "content-type": "application/json",
                            "user-agent": "catentio-webhooks/0.1.0",
                            "webhook-id": event_id,
                            "webhook-timestamp": str(int(started.timestamp())),
                            "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
                            "x-catentio-attempt": str(number),
                            "x-catentio-delivery-id": delivery_id,
                            "x-catentio-event-type": event_type,
                        },
                        "response_status": code,
                        "response_headers": {
                            "content-type": "application/json",
                            "x-request-id": f"r-{i}",
                        }
                        if code
                        else None,
                        "response_body": json.dumps({"ok": code == 200, "received": event_id})
                        if code
                        else None,
                        "response_truncated": False,
                        "error_kind": kind,
                        "error": "HTTP 503"
                        if code == 503
                        else ("timed out after 5s" if kind == "timeout" else None),
                        "outcome": outcome,
                    }
                )
    with runtime.sessions() as session, session.begin():
        for model, rows in (
            (Endpoint, endpoint_rows),
            (Event, event_rows),
            (Delivery, delivery_rows),
            (Attempt, attempt_rows),
        ):
            for start in range(0, len(rows), 1000):
                session.execute(insert(model.__table__), rows[start : start + 1000])
    return endpoint_ids
