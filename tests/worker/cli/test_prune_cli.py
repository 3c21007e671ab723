"""Retention from the command line: `prune` deletes old finished history, never pending
work, and says beforehand what it would delete."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from outbox.clock import utcnow
from outbox.database import make_engine, make_session_factory
from outbox.models import Attempt, Delivery, Event
from tests.support.cli import Invoke
from tests.support.history import History


def _expected(history: History, age: timedelta) -> tuple[set[str], set[str]]:
    """(deliveries, events) that `prune --older-than AGE` may delete, computed from the
    seed. Seeded times sit minutes away from day marks, so the cut-off's exact second
    does not matter."""
    cutoff = utcnow() - age
    doomed = {
        d["id"]
        for d in history.deliveries
        if d["status"] != "pending" and d["completed_at"] < cutoff
    }
    kept_events = {d["event_id"] for d in history.deliveries if d["id"] not in doomed}
    events = {
        e["id"]
        for e in history.events
        if e["dispatched_at"] < cutoff and e["id"] not in kept_events
    }
    return doomed, events


def _remaining(url: str) -> tuple[set[str], set[str], int]:
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        deliveries = set(session.scalars(select(Delivery.id)))
        events = set(session.scalars(select(Event.id)))
        attempts = int(session.scalar(select(func.count()).select_from(Attempt)) or 0)
    engine.dispose()
    return deliveries, events, attempts


@pytest.mark.slow
def test_prune_deletes_old_finished_history_and_never_pending_work(
    history: History, cli: Invoke
) -> None:
    """Deliveries finished over 3 days ago go with their attempts, then events with
    nothing left; old pending deliveries, their attempts and their events stay."""
    doomed, doomed_events = _expected(history, timedelta(days=3))
    old_pending = [
        d
        for d in history.select(status="pending")
        if d["created_at"] < history.now - timedelta(days=3)
    ]
    assert doomed and doomed_events and old_pending
    plan = cli("prune", "--older-than", "3d", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    planned = json.loads(plan.stdout)
    assert (planned["deliveries"], planned["events"]) == (len(doomed), len(doomed_events))

    done = cli("prune", "--older-than", "3d", "--yes", "--batch-size", "97", "--json")
    assert done.exit_code == 0, done.output
    assert {k: v for k, v in json.loads(done.stdout).items() if k != "cutoff"} == {
        **{k: v for k, v in planned.items() if k != "cutoff"},
        "dry_run": False,
    }
    deliveries, events, attempts = _remaining(history.url)
    assert deliveries == {d["id"] for d in history.deliveries} - doomed
    assert events == {e["id"] for e in history.events} - doomed_events
    assert {d["id"] for d in old_pending} <= deliveries
    assert {d["event_id"] for d in old_pending} <= events
    kept_attempts = sum(d["attempt_count"] for d in history.deliveries if d["id"] in deliveries)
    assert attempts == kept_attempts
    again = json.loads(cli("prune", "--older-than", "3d", "--yes", "--json").stdout)
    assert again["deliveries"] == again["events"] == 0


def test_prune_takes_its_age_from_the_retention_setting(history: History, cli: Invoke) -> None:
    """Without --older-than, CATENTIO_RETENTION says how old is old enough."""
    doomed, doomed_events = _expected(history, timedelta(days=4))
    plan = cli("prune", "--dry-run", "--json", CATENTIO_RETENTION="4d")
    assert plan.exit_code == 0, plan.output
    planned = json.loads(plan.stdout)
    assert (planned["deliveries"], planned["events"]) == (len(doomed), len(doomed_events))


def test_declining_the_confirmation_deletes_nothing(history: History, cli: Invoke) -> None:
    """prune asks first; answering no leaves every row where it was."""
    before = _remaining(history.url)
    result = cli("prune", "--older-than", "1d", input="n\n")
    assert result.exit_code == 1 and "Delete" in result.output
    assert _remaining(history.url) == before
