"""Bulk replays started from the portal, run in a background thread each, with their
progress kept in memory so the page can draw a progress bar.

The replay itself is the domain's ``BulkReplay`` (same batches, same re-open rule as
the command line); this only remembers how far each run got. Progress lives in the
process that started the run: a page served by another process of the API does not
see it (the rows themselves are re-opened either way).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

import structlog

from worker.ops.replay import BulkReplay

log = structlog.get_logger("worker.portal.replays")

KEPT_RUNS = 100
"""Finished runs remembered per process (the oldest are forgotten first)."""


@dataclass
class ReplayRun:
    """One bulk replay: what it selected and how far it got."""

    id: str
    workspace_id: str
    endpoint_id: str
    selected: int
    processed: int = 0
    reopened: int = 0
    finished: bool = False
    error: str | None = None
    ring_error: str | None = None

    @property
    def percent(self) -> int:
        """How far it got, 0 to 100."""
        if self.finished or not self.selected:
            return 100
        return min(100, round(100 * self.processed / self.selected))


@dataclass
class ReplayRuns:
    """The runs this process started."""

    runs: dict[str, ReplayRun] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(
        self, bulk: BulkReplay, *, workspace_id: str, endpoint_id: str, selected: int
    ) -> ReplayRun:
        """Run ``bulk`` in a thread; returns its run, updated as batches finish."""
        run = ReplayRun(f"run_{secrets.token_hex(8)}", workspace_id, endpoint_id, selected)
        with self.lock:
            self.runs[run.id] = run
            while len(self.runs) > KEPT_RUNS:
                oldest = next(iter(self.runs))
                if not self.runs[oldest].finished:
                    break
                del self.runs[oldest]

        def progress(handled: int) -> None:
            run.processed += handled
            run.reopened = bulk.reopened

        def work() -> None:
            try:
                bulk.run(progress)
            except Exception as exc:  # reported on the page; the rows done stay done
                run.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.exception("portal.bulk_replay_failed", run_id=run.id, endpoint_id=endpoint_id)
            finally:
                run.reopened = bulk.reopened
                run.ring_error = bulk.ring_error
                run.finished = True

        threading.Thread(target=work, name=f"portal-replay-{run.id}", daemon=True).start()
        return run

    def get(self, run_id: str, *, workspace_id: str) -> ReplayRun | None:
        """The run, if it is this workspace's."""
        run = self.runs.get(run_id)
        return run if run is not None and run.workspace_id == workspace_id else None
