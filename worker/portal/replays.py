"""How the portal shows a bulk replay: its progress, read from the ``replay_runs`` table.

The portal starts bulk replays on the API process's
:class:`~worker.ops.replay_runs.ReplayRunner` (the same runner and row as
``POST /v1/webhooks/{id}/replay``), which records progress after every batch. The page
reads that row, so any API process can draw the bar, whichever one runs the replay; a
run whose process died reads ``interrupted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from worker.ops.replay_runs import RunStatus, get_run, run_status


@dataclass(frozen=True)
class ReplayProgress:
    """One bulk replay as its page shows it."""

    id: str
    endpoint_id: str
    selected: int
    processed: int
    reopened: int
    status: RunStatus
    error: str | None

    @property
    def finished(self) -> bool:
        """Whether nothing more will happen (the page stops refreshing)."""
        return self.status is not RunStatus.RUNNING

    @property
    def stopped(self) -> bool:
        """Whether it ended before going through its selection."""
        return self.status in (RunStatus.FAILED, RunStatus.INTERRUPTED)

    @property
    def ring_error(self) -> str | None:
        """Why the workers could not be told at once (a finished run's note)."""
        return self.error if self.status is RunStatus.SUCCEEDED else None

    @property
    def percent(self) -> int:
        """How far it got, 0 to 100."""
        if self.status is RunStatus.SUCCEEDED or not self.selected:
            return 100
        return min(100, round(100 * self.processed / self.selected))


def replay_progress(
    session: Session, workspace_id: str, endpoint_id: str, run_id: str, *, now: datetime
) -> ReplayProgress:
    """The run of this endpoint in this workspace; another's is ``ReplayNotFound``."""
    run = get_run(session, workspace_id, endpoint_id, run_id)
    return ReplayProgress(
        id=run.id,
        endpoint_id=run.endpoint_id,
        selected=run.selected,
        processed=run.processed,
        reopened=run.reopened,
        status=run_status(run, now=now),
        error=run.error,
    )
