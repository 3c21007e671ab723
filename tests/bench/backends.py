"""CPU of the PostgreSQL backends that serve our processes, by the process they serve.

Every product process connects with ``application_name=<prefix>-<role><n>`` (set in its
``DATABASE_URL``). A thread polls ``pg_stat_activity`` for those names and reads each
backend's ``/proc/<pid>/stat`` (the server runs on this machine), keeping the latest CPU
reading of every backend it has seen: a backend that exits between two samples loses at
most one interval of CPU, and the ``connects`` counter of the process it served says
whether that happens at all.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import sqlalchemy as sa

from tests.bench import procstat

SAMPLE_INTERVAL = 0.2


@dataclass(frozen=True)
class Backend:
    """One server process: whom it serves and its CPU seconds at the last sample."""

    role: str
    cpu: float


class BackendSampler:
    """Follows the backends whose ``application_name`` starts with ``prefix-``."""

    def __init__(self, engine: sa.Engine, prefix: str) -> None:
        self._engine = engine
        self._pattern = prefix.replace("_", r"\_") + "-%"
        self._seen: dict[int, Backend] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-backends", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def snapshot(self) -> dict[int, Backend]:
        """Sample now, then every backend seen so far with its latest CPU reading."""
        self._sample()
        with self._lock:
            return dict(self._seen)

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            try:
                self._sample()
            except sa.exc.SQLAlchemyError:
                continue

    def _sample(self) -> None:
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT pid, application_name FROM pg_stat_activity "
                    "WHERE application_name LIKE :pattern"
                ),
                {"pattern": self._pattern},
            ).all()
        readings = {}
        for pid, name in rows:
            sample = procstat.read(pid)
            if sample is not None:
                readings[pid] = Backend(role=_role(name), cpu=sample.cpu)
        with self._lock:
            self._seen.update(readings)


def _role(application_name: str) -> str:
    """``catbench-1a2b-worker2`` → ``worker``."""
    return re.sub(r"\d+$", "", application_name.rsplit("-", 1)[-1])
