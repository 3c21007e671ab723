"""Compare two benchmark result files figure by figure: before, after, after ÷ before.

    python -m tests.bench.compare BEFORE.json AFTER.json

Rows are matched on (scenario, figure); rows in only one file are listed with ``n/a``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def rows(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    document = json.loads(path.read_text())
    return {(row["scenario"], row["figure"]): row for row in document["rows"]}


def compare(before: Path, after: Path) -> str:
    old, new = rows(before), rows(after)
    keys = list(old) + [key for key in new if key not in old]
    lines = [("scenario", "figure", "before", "after", "after ÷ before", "unit")]
    for key in keys:
        a, b = old.get(key, {}).get("value"), new.get(key, {}).get("value")
        unit = (old.get(key) or new.get(key) or {}).get("unit", "")
        ratio = f"{b / a:.3f}" if a and b is not None else ""
        lines.append((*key, _cell(a), _cell(b), ratio, unit))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines
    )


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m tests.bench.compare BEFORE.json AFTER.json")
    print(compare(Path(sys.argv[1]), Path(sys.argv[2])))
