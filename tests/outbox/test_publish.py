"""``outbox.publish``: validation, the envelope, idempotency, and the caller's transaction."""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outbox import Event, publish
from outbox.database import make_session_factory
from outbox.errors import (
    IdempotencyKeyConflict,
    InvalidEventType,
    InvalidWorkspaceId,
    PayloadNotJSON,
    PayloadTooLarge,
    ValidationError,
)
from tests.support.services import engine_for


@pytest.fixture
def sessions(migrated: str) -> Any:
    engine = engine_for(migrated)
    yield make_session_factory(engine)
    engine.dispose()


def count(sessions: Any) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Event)))


def test_publish_adds_only_to_the_callers_session(sessions: Any) -> None:
    """Nothing is visible to others until the caller commits; a rollback leaves nothing."""
    with sessions() as session:
        session.begin()
        publish(session, workspace_id="ws_1", type="run.succeeded", data={"a": 1})
        session.flush()
        assert count(sessions) == 0
        session.rollback()
    assert count(sessions) == 0
    with sessions() as session, session.begin():
        publish(session, workspace_id="ws_1", type="run.succeeded", data={"a": 1})
    assert count(sessions) == 1


def test_body_is_the_minified_forjio_envelope(sessions: Any) -> None:
    """The stored body is minified JSON with data/error/meta and camelCase fields."""
    with sessions() as session, session.begin():
        event = publish(
            session,
            workspace_id="ws_1",
            type="subtask.failed",
            data={"name": "ünïcode", "n": [1, 2]},
            request_id="req_9",
        )
    with sessions() as session:
        stored = session.get_one(Event, event.id)
    assert " " not in stored.body.replace("ünïcode", "")
    envelope = json.loads(stored.body)
    assert envelope["error"] is None
    assert envelope["data"] == {
        "id": event.id,
        "type": "subtask.failed",
        "workspaceId": "ws_1",
        "createdAt": envelope["meta"]["timestamp"],
        "data": {"name": "ünïcode", "n": [1, 2]},
    }
    assert envelope["meta"]["requestId"] == "req_9"
    assert envelope["data"]["createdAt"].endswith("Z")
    assert stored.id.startswith("evt_") and stored.dispatched_at is None


@pytest.mark.parametrize(
    "bad",
    ["", "Run.succeeded", "run..succeeded", "run.", ".run", "run succeeded", "r" * 129, "run.*", 7],
)
def test_bad_event_types_are_refused(sessions: Any, bad: Any) -> None:
    """Event types must be dot-separated [a-z0-9_] segments."""
    with sessions() as session, pytest.raises(InvalidEventType):
        publish(session, workspace_id="ws_1", type=bad, data={})


@pytest.mark.parametrize("bad", ["", "ws 1", "ws/1", "w" * 65, None])
def test_bad_workspace_ids_are_refused(sessions: Any, bad: Any) -> None:
    """Workspace ids are short [A-Za-z0-9_-] strings."""
    with sessions() as session, pytest.raises(InvalidWorkspaceId):
        publish(session, workspace_id=bad, type="run.succeeded", data={})


@pytest.mark.parametrize(
    "data", [{"x": {1, 2}}, {"x": math.nan}, {1: "int key"}, {"x": object()}, ["a list"], "s"]
)
def test_data_that_is_not_a_json_object_is_refused(sessions: Any, data: Any) -> None:
    """Sets, NaN, non-string keys, arbitrary objects and non-objects are refused."""
    with sessions() as session, pytest.raises(PayloadNotJSON):
        publish(session, workspace_id="ws_1", type="run.succeeded", data=data)


def test_oversized_body_is_refused_and_nothing_is_written(sessions: Any) -> None:
    """A body over the limit raises PayloadTooLarge; the limit is configurable."""
    with sessions() as session, session.begin():
        with pytest.raises(PayloadTooLarge, match="over the 1024 limit"):
            publish(
                session,
                workspace_id="ws_1",
                type="run.succeeded",
                data={"x": "y" * 2000},
                max_body_bytes=1024,
            )
        publish(session, workspace_id="ws_1", type="run.succeeded", data={"x": "y" * 2000})
    assert count(sessions) == 1


def test_errors_share_one_root() -> None:
    """Every validation error is a ValidationError (and a ValueError)."""
    for error in (InvalidEventType, PayloadNotJSON, PayloadTooLarge, IdempotencyKeyConflict):
        assert issubclass(error, ValidationError) and issubclass(error, ValueError)


def test_same_idempotency_key_returns_the_existing_event(sessions: Any) -> None:
    """Publishing a key twice in one workspace returns the first event; other workspaces
    may use the same key."""
    with sessions() as session, session.begin():
        first = publish(
            session, workspace_id="ws_1", type="run.succeeded", data={"a": 1}, idempotency_key="k1"
        )
    with sessions() as session, session.begin():
        again = publish(
            session, workspace_id="ws_1", type="run.succeeded", data={"a": 2}, idempotency_key="k1"
        )
        other = publish(
            session, workspace_id="ws_2", type="run.succeeded", data={"a": 2}, idempotency_key="k1"
        )
    assert again.id == first.id and other.id != first.id
    assert count(sessions) == 2
    with sessions() as session, session.begin(), pytest.raises(IdempotencyKeyConflict):
        publish(session, workspace_id="ws_1", type="run.failed", data={}, idempotency_key="k1")


def test_concurrent_producers_with_one_key_insert_once(sessions: Any) -> None:
    """Two producers racing with the same key: the unique constraint lets one insert;
    the other gets the same event back once the first commits."""
    barrier = threading.Barrier(2)
    results: list[str] = []
    errors: list[BaseException] = []

    def producer(hold: float) -> None:
        try:
            with sessions() as session, session.begin():
                barrier.wait()
                event = publish(
                    session,
                    workspace_id="ws_1",
                    type="run.succeeded",
                    data={"h": hold},
                    idempotency_key="race",
                )
                threading.Event().wait(hold)
                results.append(event.id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(h,)) for h in (0.3, 0.0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == []
    assert len(results) == 2 and results[0] == results[1]
    assert count(sessions) == 1


def test_publish_inside_a_producers_savepoint_keeps_its_other_work(sessions: Any) -> None:
    """Losing an idempotency race rolls back only the event insert, not the caller's work."""
    with sessions() as session, session.begin():
        publish(session, workspace_id="ws_1", type="run.succeeded", data={}, idempotency_key="s")
    with Session(bind=sessions.kw["bind"]) as session, session.begin():
        publish(session, workspace_id="ws_1", type="run.succeeded", data={}, idempotency_key="s")
        publish(session, workspace_id="ws_1", type="run.succeeded", data={"new": True})
    assert count(sessions) == 2
