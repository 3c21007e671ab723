"""Run a ``catentio-webhooks`` command with statement counters, without changing its code.

    python -m tests.bench.instrumented COUNTS_FILE -- worker --threads 8
    python -m tests.bench.instrumented - -- endpoints add ...     (no counters)

Before the command's code runs, this registers listeners on SQLAlchemy's ``Engine`` and
``Pool`` classes (so every engine the process makes is counted) and wraps the psycopg
cursor's ``execute`` and redis-py's ``execute_command``. A thread writes the totals to
``COUNTS_FILE`` (JSON, replaced atomically) every 0.2 s and once more at exit; the
benchmark reads the file at the start and at the end of a measured window and divides
the difference by the deliveries made in between.

Counts: ``sql`` (statements SQLAlchemy executed; by first keyword in ``sql_by_verb``; writes
by table in ``sql_by_target``; ``sql_locking``: those with ``FOR [NO KEY] UPDATE``),
``driver`` (psycopg ``execute`` calls: the statements plus the pings of pooled connections
that sat idle
and anything the driver is asked directly), ``commits``/``rollbacks``, pool ``checkouts``
and new ``connects``, ``redis`` commands (a pipeline counts each command it sends).

The command is the installed ``catentio-webhooks`` console script, found through its
entry point, so this keeps working whatever modules the product is split into. With
``CATENTIO_BENCH_PRODUCT_PATH`` set (the A/B scenario), that checkout comes first on
``sys.path``, so its ``worker`` and ``outbox`` run instead of the installed ones.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from collections import Counter
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

WRITE_INTERVAL = 0.2

PRODUCT_PATH = "CATENTIO_BENCH_PRODUCT_PATH"
"""Set by the benchmark to run another checkout's ``worker`` and ``outbox`` (A/B)."""


class Counts:
    """Thread-safe counters, written to a file now and then."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: Counter[str] = Counter()
        self.lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            self.values[name] += amount

    def write(self) -> None:
        with self.lock:
            snapshot = dict(self.values)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(snapshot))
        os.replace(partial, self.path)

    def keep_writing(self) -> None:
        stop = threading.Event()
        while not stop.wait(WRITE_INTERVAL):
            self.write()


def install(counts: Counts) -> None:
    """Hook the counters into SQLAlchemy, psycopg and redis-py (before any engine exists)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    def before_cursor_execute(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, many: bool
    ) -> None:
        words = statement.split(None, 3)
        verb = words[0].upper() if words else "?"
        target = _target(verb, words)
        locking = "FOR UPDATE" in statement or "FOR NO KEY UPDATE" in statement
        with counts.lock:
            counts.values["sql"] += 1
            counts.values[f"sql_by_verb.{verb}"] += 1
            if target:
                counts.values[f"sql_by_target.{verb} {target}"] += 1
            if locking:
                counts.values["sql_locking"] += 1
            if many:
                counts.values["sql_executemany"] += 1

    event.listen(Engine, "before_cursor_execute", before_cursor_execute)
    event.listen(Engine, "commit", lambda _conn: counts.add("commits"))
    event.listen(Engine, "rollback", lambda _conn: counts.add("rollbacks"))
    event.listen(Pool, "checkout", lambda *_args: counts.add("checkouts"))
    event.listen(Pool, "connect", lambda *_args: counts.add("connects"))

    try:
        import psycopg
    except ImportError:
        pass
    else:
        _count_calls(psycopg.Cursor, "execute", counts, "driver")
        _count_calls(psycopg.Cursor, "executemany", counts, "driver")

    try:
        import redis
        import redis.client
    except ImportError:
        return
    _count_calls(redis.Redis, "execute_command", counts, "redis")
    original = redis.client.Pipeline.execute

    def pipeline_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts.add("redis", len(self.command_stack))
        counts.add("redis_round_trips")
        return original(self, *args, **kwargs)

    redis.client.Pipeline.execute = pipeline_execute  # type: ignore[method-assign]


def _target(verb: str, words: list[str]) -> str:
    """The table an UPDATE, INSERT or DELETE writes (``UPDATE deliveries SET …``)."""
    if verb == "UPDATE" and len(words) > 1:
        return words[1].strip('"')
    if verb in ("INSERT", "DELETE") and len(words) > 2:
        return words[2].strip('"').split("(", 1)[0]
    return ""


def _count_calls(owner: type, name: str, counts: Counts, counter: str) -> None:
    original = getattr(owner, name)

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts.add(counter)
        return original(self, *args, **kwargs)

    setattr(owner, name, counted)


def run(argv: list[str]) -> None:
    """``argv``: ``COUNTS_FILE -- command args…``; never returns (the CLI exits)."""
    if len(argv) < 2 or argv[1] != "--":
        raise SystemExit("usage: python -m tests.bench.instrumented COUNTS_FILE|- -- COMMAND…")
    if argv[0] != "-":
        counts = Counts(Path(argv[0]))
        install(counts)
        counts.write()
        atexit.register(counts.write)
        threading.Thread(target=counts.keep_writing, name="bench-counts", daemon=True).start()
    product = os.environ.pop(PRODUCT_PATH, None)
    if product:
        # Before the product is imported: its packages are found there first.
        sys.path.insert(0, product)
    (script,) = entry_points(group="console_scripts", name="catentio-webhooks")
    main = script.load()
    sys.argv = ["catentio-webhooks", *argv[2:]]
    main()


if __name__ == "__main__":
    run(sys.argv[1:])
