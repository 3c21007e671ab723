"""``python -m tests.bench.engine_process STATS_FILE ARGS…``: the ``catentio-webhooks``
command with a count of the SQL statements it executes, written to ``STATS_FILE`` on exit.

The benchmark runs the poller and the workers through this, so statements per delivery
are counted where they are sent rather than guessed.
"""

from __future__ import annotations

import atexit
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_counts = {"statements": 0, "executemany_rows": 0}


@event.listens_for(Engine, "before_cursor_execute")
def _count(_conn: Any, _cursor: Any, _statement: str, params: Any, _ctx: Any, many: bool) -> None:
    _counts["statements"] += 1
    if many:
        _counts["executemany_rows"] += len(params)


def _write(path: Path) -> None:
    path.write_text(json.dumps(_counts))


if __name__ == "__main__":
    stats = Path(sys.argv[1])
    atexit.register(_write, stats)
    from worker.cli import main

    main(args=sys.argv[2:], prog_name="catentio-webhooks")
