"""A producer publishing at a steady rate, in a process of its own.

    python -m tests.bench.publisher DATABASE_URL WORKSPACE RATE SECONDS OUT_FILE

One ``outbox.publish`` per transaction, ``RATE`` a second for ``SECONDS``, on a schedule
fixed at the start (a late event is published at once, never skipped). Writes
``{event_id: wall time right after its COMMIT}`` to ``OUT_FILE`` as JSON.

In production the producer runs on its own machine; here it shares two cores with the
product it measures, which can starve it below the rate asked for. So it raises its own
scheduling priority when it may (``nice -10``; only root may), and the benchmark
reports the rate it achieved beside the latency.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

import outbox
from outbox import publish

PAD = "x" * 200
"""Padding in every benchmark event, so bodies are ~350 bytes like a small real event."""
PRIORITY = -10


def publish_paced(
    url: str, schema: str, workspace: str, rate: float, seconds: float
) -> dict[str, float]:
    engine = outbox.bind(sa.create_engine(url), schema)
    committed: dict[str, float] = {}
    interval = 1.0 / rate
    try:
        with Session(engine, expire_on_commit=False) as session:
            session.connection()  # connect before the schedule starts
            session.rollback()
            start = time.time()
            for n in range(int(rate * seconds)):
                pause = start + n * interval - time.time()
                if pause > 0:
                    time.sleep(pause)
                with session.begin():
                    event = publish(
                        session, workspace_id=workspace, type="bench.ok", data={"n": n, "pad": PAD}
                    )
                committed[event.id] = time.time()
    finally:
        engine.dispose()
    return committed


def run_publisher(
    url: str, schema: str, workspace: str, rate: float, seconds: float, workdir: Path, cwd: Path
) -> dict[str, float]:
    """Run the publisher in a child process; its commit times by event id."""
    out = workdir / f"published-{workspace}.json"
    arguments = [url, schema, workspace, str(rate), str(seconds), str(out)]
    subprocess.run(
        [sys.executable, "-m", "tests.bench.publisher", *arguments],
        cwd=cwd,
        check=True,
        timeout=seconds * 10 + 120,
    )
    result: dict[str, float] = json.loads(out.read_text())
    return result


if __name__ == "__main__":
    database_url, db_schema, target, per_second, duration, out_file = sys.argv[1:7]
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
    times = publish_paced(database_url, db_schema, target, float(per_second), float(duration))
    Path(out_file).write_text(json.dumps(times))
