"""Retention in the outbox: bounded batches, a time budget, and the poller's schedule."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from outbox.clock import utcnow
from outbox.database import make_engine, make_session_factory
from outbox.migrate import upgrade
from outbox.models import Delivery, DeliveryStatus
from tests.support.history import seed_history
from worker.fanout.poller import Poller
from worker.ops.retention import PruneCounts, count_prunable, prune


def _sessions(url: str) -> tuple[Engine, sessionmaker[Session]]:
    engine = make_engine(url)
    return engine, make_session_factory(engine)


def _pending(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        query = select(func.count()).where(Delivery.status == DeliveryStatus.PENDING)
        return int(session.scalar(query) or 0)


def test_a_budget_stops_pruning_early_and_the_next_run_finishes(migrated: str) -> None:
    """With its time budget spent, prune stops after a batch and says it is not done;
    the next run takes the rest."""
    history = seed_history(migrated, events=300)
    engine, sessions = _sessions(migrated)
    cutoff = utcnow() - timedelta(hours=3)
    with sessions() as session:
        planned = count_prunable(session, cutoff)
    first, complete = prune(sessions, cutoff=cutoff, batch_size=20, budget=0.0)
    assert not complete and first.deliveries == 20
    rest, complete = prune(sessions, cutoff=cutoff, batch_size=20)
    assert complete and first + rest == planned
    assert _pending(sessions) == len(history.select(status="pending"))
    engine.dispose()


def test_poller_prunes_on_its_schedule(migrated: str) -> None:
    """A poller given a retention prunes old finished history from its loop and leaves
    pending deliveries alone."""
    history = seed_history(migrated, events=300)
    engine, sessions = _sessions(migrated)
    poller = Poller(
        session_factory=sessions, dispatch=lambda _ids: None, retention=timedelta(hours=6)
    )
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), kwargs={"interval": 0.02})
    thread.start()
    try:
        end = time.monotonic() + 10
        cutoff = utcnow() - timedelta(hours=6)
        while time.monotonic() < end:
            with sessions() as session:
                if count_prunable(session, cutoff) == PruneCounts():
                    break
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    with sessions() as session:
        assert count_prunable(session, cutoff) == PruneCounts()
        finished_recent = session.scalar(
            select(func.count()).where(Delivery.completed_at >= cutoff + timedelta(minutes=1))
        )
    assert finished_recent and finished_recent > 0
    assert _pending(sessions) == len(history.select(status="pending"))
    engine.dispose()


def test_prune_skips_rows_another_transaction_holds(postgres_url: str) -> None:
    """On PostgreSQL a batch skips rows locked elsewhere instead of waiting on them:
    pruning never queues behind a worker or a replay."""
    engine, sessions = _sessions(postgres_url)
    upgrade(engine)
    history = seed_history(postgres_url, events=100)
    cutoff = utcnow() - timedelta(minutes=30)
    held = next(
        d["id"]
        for d in history.deliveries
        if d["status"] == "failed" and d["completed_at"] < cutoff
    )
    with sessions() as other, other.begin():
        other.execute(select(Delivery).where(Delivery.id == held).with_for_update())
        started = time.monotonic()
        counts, complete = prune(sessions, cutoff=cutoff, batch_size=25)
        assert time.monotonic() - started < 10 and complete
    with sessions() as session:
        assert session.get(Delivery, held) is not None
        assert count_prunable(session, cutoff).deliveries == 1
    assert counts.deliveries > 0
    engine.dispose()
