"""Bulk replays in the background: a row per run, so any API process can report on it.

``start_run`` records the run (what it selects and how many rows that is) in the
caller's transaction; :class:`ReplayRunner` then works through it in a thread with
:class:`~worker.ops.replay.BulkReplay` (batches, each re-opened in its own short
transaction and rung), writing progress after every batch. A run whose process died
stops being updated; :func:`run_status` reports it ``interrupted`` once its last
update is older than ``STALE_AFTER``, and starting the same replay again finishes the
job (re-opened rows no longer match).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from outbox import ids
from outbox.clock import Clock, utcnow
from outbox.envelope import isoformat
from outbox.models import ReplayRun
from worker.errors import ReplayNotFound
from worker.fanout.poller import Dispatch
from worker.ops.history import DeliveryFilter
from worker.ops.replay import DEFAULT_BATCH_SIZE, BulkReplay

log = structlog.get_logger("worker.ops.replay_runs")

STALE_AFTER = timedelta(minutes=5)
"""A running replay not updated for this long is reported interrupted."""


class RunStatus(StrEnum):
    """Where a bulk replay stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


def selection_record(selection: DeliveryFilter) -> dict[str, Any]:
    """What a run selects, as stored with it."""
    return {
        "statuses": list(selection.statuses),
        "types": list(selection.event_types),
        "since": isoformat(selection.since) if selection.since else None,
        "until": isoformat(selection.until) if selection.until else None,
    }


def start_run(
    session: Session,
    *,
    workspace_id: str,
    selection: DeliveryFilter,
    selected: int,
    now: datetime,
) -> ReplayRun:
    """Record a new run of ``selection`` (of ``selected`` rows) in ``session``."""
    assert selection.endpoint_id is not None
    run = ReplayRun(
        id=ids.new_id(ids.REPLAY),
        workspace_id=workspace_id,
        endpoint_id=selection.endpoint_id,
        selection=selection_record(selection),
        status=RunStatus.RUNNING.value,
        selected=selected,
        processed=0,
        reopened=0,
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    return run


def get_run(session: Session, workspace_id: str, endpoint_id: str, run_id: str) -> ReplayRun:
    """The run, if it is of this endpoint in this workspace; else ``ReplayNotFound``."""
    run = session.get(ReplayRun, run_id)
    if run is None or run.workspace_id != workspace_id or run.endpoint_id != endpoint_id:
        raise ReplayNotFound(f"no replay {run_id!r}")
    return run


def run_status(run: ReplayRun, *, now: datetime) -> RunStatus:
    """The run's status, ``interrupted`` for one that stopped being updated."""
    status = RunStatus(run.status)
    if status is RunStatus.RUNNING and now - run.updated_at > STALE_AFTER:
        return RunStatus.INTERRUPTED
    return status


@dataclass
class ReplayRunner:
    """Runs recorded replays in background threads (two at a time)."""

    sessions: sessionmaker[Session]
    ring: Dispatch | None = None
    clock: Clock = utcnow
    batch_size: int = DEFAULT_BATCH_SIZE
    _pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="catentio-replay")
    )

    def submit(self, run_id: str, selection: DeliveryFilter) -> None:
        """Work through ``selection`` for the recorded run ``run_id``."""
        self._pool.submit(self.execute, run_id, selection)

    def execute(self, run_id: str, selection: DeliveryFilter) -> None:
        """Replay the selection, recording progress after each batch, then the outcome."""
        job = BulkReplay(
            sessions=self.sessions,
            selection=selection,
            ring=self.ring,
            batch_size=self.batch_size,
            clock=self.clock,
        )
        processed = 0

        def progress(count: int) -> None:
            nonlocal processed
            processed += count
            self._record(run_id, processed=processed, reopened=job.reopened)

        with structlog.contextvars.bound_contextvars(replay_id=run_id):
            try:
                job.run(progress=progress)
            except Exception as exc:  # recorded on the run; the database may be the cause
                log.warning("replay.failed", error=repr(exc))
                self._finish(run_id, RunStatus.FAILED, error=str(exc) or type(exc).__name__)
                return
            log.info("replay.finished", processed=processed, reopened=job.reopened)
            self._finish(run_id, RunStatus.SUCCEEDED, error=job.ring_error)

    def _record(self, run_id: str, **values: Any) -> None:
        with self.sessions() as session, session.begin():
            session.execute(
                update(ReplayRun)
                .where(ReplayRun.id == run_id)
                .values(updated_at=self.clock(), **values)
            )

    def _finish(self, run_id: str, status: RunStatus, *, error: str | None) -> None:
        now = self.clock()
        try:
            self._record(run_id, status=status.value, error=error, finished_at=now)
        except Exception as exc:  # nothing more to do: the run reads as interrupted later
            log.warning("replay.unrecorded", status=status.value, error=repr(exc))

    def close(self) -> None:
        """Wait for the runs in progress and stop."""
        self._pool.shutdown(wait=True)
