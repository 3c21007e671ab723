"""A seeded history: a few thousand deliveries with known statuses and times.

``seed_history`` bulk-inserts endpoints, events, deliveries and attempts spread over
five days, so filters, pagination, replay and prune can be checked against what was
put in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from outbox import ids
from outbox.clock import utcnow
from outbox.database import make_engine, make_session_factory
from outbox.envelope import render
from outbox.models import Attempt, Delivery, DeliveryStatus, Endpoint, Event
from tests.support.services import TEST_KEY
from worker.endpoints.secretbox import SecretBox

TYPES = ("run.succeeded", "run.failed", "project.paused")
SECRET = "whsec_" + "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1iZS1wcmludGVk"
"""The signing secret of every seeded endpoint: it must never appear in CLI output."""


@dataclass
class History:
    """What was seeded: endpoint ids by name, and every delivery as a plain dict."""

    url: str
    now: datetime
    endpoints: dict[str, str]
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def select(self, **where: Any) -> list[dict[str, Any]]:
        """Seeded deliveries matching every ``column=value`` (a tuple: any of), newest first."""
        rows = [
            d
            for d in self.deliveries
            if all(d[k] in v if isinstance(v, tuple) else d[k] == v for k, v in where.items())
        ]
        return sorted(rows, key=lambda d: d["id"], reverse=True)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _status(i: int, index: int) -> str:
    k = (i + index) % 10
    if k in (0, 1):
        return DeliveryStatus.FAILED
    if k == 2:
        return DeliveryStatus.SKIPPED
    if k == 3:
        return DeliveryStatus.PENDING
    return DeliveryStatus.SUCCEEDED


def _attempts(delivery: dict[str, Any], url: str) -> list[dict[str, Any]]:
    outcomes = {
        DeliveryStatus.SUCCEEDED: [(200, None, "succeeded")],
        DeliveryStatus.FAILED: [(500, "status", "retry"), (None, "timeout", "failed")],
        DeliveryStatus.PENDING: [(503, "status", "retry")],
        DeliveryStatus.SKIPPED: [],
    }[delivery["status"]]
    rows = []
    for number, (code, kind, outcome) in enumerate(outcomes, start=1):
        started = delivery["created_at"] + timedelta(seconds=number)
        rows.append(
            {
                "id": ids.new_id(ids.ATTEMPT, now_ms=_ms(started)),
                "delivery_id": delivery["id"],
                "number": number,
                "trigger": "scheduled",
                "url": url,
                "started_at": started,
                "duration_ms": 40.0 + number,
                "request_headers": {
                    "webhook-id": delivery["event_id"],
                    "webhook-signature": "v1,c2lnbmF0dXJl",
                    "authorization": "[redacted]",
                },
                "response_status": code,
                "response_headers": {"content-type": "text/plain"} if code else None,
                "response_body": f"answer {code}" if code else None,
                "response_truncated": False,
                "error_kind": kind,
                "error": f"HTTP {code}" if code and kind else ("timed out" if kind else None),
                "outcome": outcome,
            }
        )
    return rows


def seed_history(url: str, *, events: int = 1500, now: datetime | None = None) -> History:
    """Insert three endpoints and ``events`` events, one every five minutes up to
    ``now`` (at 2.5, 7.5, 12.5 … minutes ago), each delivered to its workspace's
    endpoints with a status that cycles through failed, failed, skipped, pending and six
    succeeded."""
    now = now or utcnow()
    box = SecretBox([TEST_KEY])
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    layout = {"a1": "ws_a", "a2": "ws_a", "b1": "ws_b"}
    endpoint_rows = []
    for name, workspace in layout.items():
        created = now - timedelta(days=10)
        endpoint_rows.append(
            {
                "id": ids.new_id(ids.ENDPOINT),
                "workspace_id": workspace,
                "url": f"https://{name}.example/hook",
                "description": name,
                "event_types": ["*"],
                "scheme": "v1",
                "secrets": [{"secret": box.encrypt(SECRET), "expires_at": None}],
                "headers": {"authorization": "Bearer do-not-print"},
                "enabled": True,
                "paused": False,
                "consecutive_failures": 0,
                "created_at": created,
                "updated_at": created,
            }
        )
    history = History(url, now, {n: r["id"] for n, r in zip(layout, endpoint_rows, strict=True)})
    urls = {r["id"]: r["url"] for r in endpoint_rows}
    by_workspace: dict[str, list[tuple[int, str]]] = {}
    for index, (name, workspace) in enumerate(layout.items()):
        by_workspace.setdefault(workspace, []).append((index, history.endpoints[name]))
    attempts: list[dict[str, Any]] = []
    for i in range(events):
        # Half-way between five-minute marks: "1h", "1d", "2d" ago never fall on a row.
        created = now - timedelta(minutes=5 * (events - i) - 2.5)
        workspace = "ws_b" if i % 4 == 3 else "ws_a"
        event_id = ids.new_id(ids.EVENT, now_ms=_ms(created))
        event_type = TYPES[i % len(TYPES)]
        history.events.append(
            {
                "id": event_id,
                "workspace_id": workspace,
                "type": event_type,
                "body": render(
                    event_id=event_id,
                    event_type=event_type,
                    workspace_id=workspace,
                    created_at=created,
                    data={"n": i},
                    request_id=None,
                ),
                "created_at": created,
                "dispatched_at": created,
            }
        )
        for index, endpoint_id in by_workspace[workspace]:
            status = _status(i, index)
            finished = status != DeliveryStatus.PENDING
            delivery = {
                "id": ids.new_id(ids.DELIVERY, now_ms=_ms(created)),
                "event_id": event_id,
                "endpoint_id": endpoint_id,
                "workspace_id": workspace,
                "event_type": event_type,
                "status": status,
                "cycle_attempts": 0,
                "next_trigger": "scheduled",
                "next_attempt_at": None if finished else now + timedelta(hours=1),
                "created_at": created,
                "updated_at": created,
                "completed_at": created + timedelta(minutes=1) if finished else None,
            }
            tries = _attempts(delivery, urls[endpoint_id])
            delivery["attempt_count"] = len(tries)
            delivery["last_status_code"] = tries[-1]["response_status"] if tries else None
            attempts.extend(tries)
            history.deliveries.append(delivery)
    with sessions() as session, session.begin():
        _insert_in_chunks(session, Endpoint, endpoint_rows)
        _insert_in_chunks(session, Event, history.events)
        _insert_in_chunks(session, Delivery, history.deliveries)
        _insert_in_chunks(session, Attempt, attempts)
    engine.dispose()
    return history


def _insert_in_chunks(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    # Core executemany (not the ORM's bulk path): batched multi-row INSERTs.
    for start in range(0, len(rows), 1000):
        session.execute(insert(model.__table__), rows[start : start + 1000])
