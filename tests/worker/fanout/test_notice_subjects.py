"""Operational events about endpoint X are never delivered to X: they go to the
workspace's other subscribers. Through the real runtime and a real receiver."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from outbox import Delivery, Event, publish
from worker.demo.receiver import Receiver, always
from worker.runtime import Runtime


def _wait_for_event(runtime: Runtime, event_type: str, timeout: float = 20.0) -> list[Event]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with runtime.sessions() as session:
            found = list(session.scalars(select(Event).where(Event.type == event_type)))
            if found and all(e.dispatched_at is not None for e in found):
                return found
        time.sleep(0.05)
    return []


def test_notices_about_an_endpoint_go_to_the_others_only(
    database_url: str,
    make_runtime: Callable[..., Runtime],
    add_endpoint: Any,
    receiver: Receiver,
) -> None:
    """A failing endpoint subscribed to '*' gets no webhook.delivery.exhausted about its
    own deliveries, and a gone one no webhook.endpoint.disabled about itself; a healthy
    '*' subscriber of the same workspace gets both."""
    runtime = make_runtime(database_url, circuit_threshold=100)
    failing = add_endpoint(runtime, receiver=receiver, path="/failing", behaviour=always(500))
    gone = add_endpoint(runtime, receiver=receiver, path="/gone", behaviour=always(410))
    watcher = add_endpoint(runtime, receiver=receiver, path="/watcher")
    with runtime.sessions() as session, session.begin():
        publish(session, workspace_id="ws_a", type="run.succeeded", data={"n": 1})
    with runtime.running():
        exhausted = _wait_for_event(runtime, "webhook.delivery.exhausted")
        disabled = _wait_for_event(runtime, "webhook.endpoint.disabled")
        assert exhausted and disabled
        assert receiver.wait_for(3, path="/watcher", timeout=20)
    with runtime.sessions() as session:
        notice_ids = {e.id for e in exhausted + disabled}
        targets = {
            (d.event_id, d.endpoint_id)
            for d in session.scalars(select(Delivery).where(Delivery.event_id.in_(notice_ids)))
        }
    subjects = {
        e.id: json.loads(e.body)["data"]["data"]["endpointId"] for e in exhausted + disabled
    }
    assert set(subjects.values()) == {failing.endpoint.id, gone.endpoint.id}
    assert not [t for t in targets if subjects[t[0]] == t[1]]  # none to its subject
    assert {(e.id, watcher.endpoint.id) for e in exhausted + disabled} <= targets
    about = {json.loads(r.body)["data"]["type"] for r in receiver.received("/watcher")}
    assert about == {"run.succeeded", "webhook.delivery.exhausted", "webhook.endpoint.disabled"}
    for request in receiver.received("/failing"):  # news about others only
        data = json.loads(request.body)["data"]
        assert data["data"].get("endpointId") in (None, gone.endpoint.id), data
