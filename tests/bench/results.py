"""The figures a benchmark run produced: one table at the end, the same rows as JSON.

Each row is (scenario, figure, value, unit, ratio, versus): ``ratio`` is the value
divided by what ``versus`` names, measured in the same run. Rows about CPU come from
:func:`record_usage`, which turns a window's :class:`~tests.bench.usage.Usage` into
per-delivery figures for every role (worker, poller, run, their PostgreSQL backends,
the receiver).
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.usage import Usage

MS = 1000.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    scenario: str
    figure: str
    value: float | None
    unit: str = ""
    ratio: float | None = None
    versus: str = ""


@dataclass
class Results:
    """Rows in the order they were measured, plus raw details per scenario."""

    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        scenario: str,
        figure: str,
        value: float | None,
        unit: str = "",
        *,
        ratio: float | None = None,
        versus: str = "",
    ) -> None:
        self.rows.append(Row(scenario, figure, value, unit, ratio, versus))

    def note(self, text: str) -> None:
        """A block of text printed after the table (a profile, say)."""
        self.notes.append(text)

    def detail(self, scenario: str, key: str, value: Any) -> None:
        self.details.setdefault(scenario, {})[key] = value

    def table(self) -> str:
        header = ("scenario", "figure", "value", "unit", "ratio", "versus")
        lines = [header] + [
            (
                r.scenario,
                r.figure,
                _number(r.value),
                r.unit,
                "" if r.ratio is None else f"{r.ratio:.3f}",
                r.versus,
            )
            for r in self.rows
        ]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = []
        for index, line in enumerate(lines):
            cells = [
                cell.rjust(widths[i]) if i in (2, 4) else cell.ljust(widths[i])
                for i, cell in enumerate(line)
            ]
            out.append("  ".join(cells).rstrip())
            if index == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def write(self, path: Path) -> None:
        document = {
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "commit": _commit(),
            "machine": {"cpus": _cpus(), "python": platform.python_version()},
            "rows": [asdict(r) for r in self.rows],
            "details": self.details,
            "notes": self.notes,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def record_usage(results: Results, scenario: str, usage: Usage, deliveries: int) -> None:
    """Per-delivery CPU, statements and memory of every role, from one window."""
    results.detail(scenario, "usage", usage.as_dict())
    results.detail(scenario, "deliveries", deliveries)
    if deliveries <= 0:
        return
    per = MS / deliveries
    total = 0.0
    for name, seconds in sorted(usage.cpu_by_role().items()):
        results.add(scenario, f"{name} CPU per delivery", seconds * per, "ms")
        total += seconds
    for name, seconds in sorted(usage.backend_cpu.items()):
        figure = f"PostgreSQL backends of {name} CPU per delivery"
        results.add(scenario, figure, seconds * per, "ms")
        total += seconds
    if usage.backend_cpu:
        backends = sum(usage.backend_cpu.values())
        results.add(scenario, "PostgreSQL backends CPU per delivery", backends * per, "ms")
    results.add(scenario, "ours in all (processes + backends) CPU per delivery", total * per, "ms")
    receiver = usage.receiver_cpu_per_request()
    if receiver is not None:
        results.add(scenario, "receiver CPU per request", receiver * MS, "ms")
    for name, counts in sorted(usage.counts_by_role().items()):
        for counter in ("sql", "driver", "commits", "checkouts", "connects", "redis"):
            if counter in counts or counter == "sql":
                results.add(
                    scenario, f"{name} {counter} per delivery", counts[counter] / deliveries
                )
        detailed = sorted(k for k in counts if k.startswith("sql_by_target.") or k == "sql_locking")
        for counter in detailed:
            label = (
                "statements with FOR UPDATE"
                if counter == "sql_locking"
                else counter.removeprefix("sql_by_target.")
            )
            results.add(scenario, f"{name} {label} per delivery", counts[counter] / deliveries)
    if usage.seconds > 0:
        results.add(
            scenario,
            "other processes' CPU meanwhile (noise)",
            usage.others_cpu / usage.seconds,
            "cores",
        )
    for name, rss in sorted(usage.rss.items()):
        results.add(scenario, f"{name} RSS at end", rss / MIB, "MiB")


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value else "0"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=False,
        )
        return out.stdout.strip()
    except OSError:
        return ""


def _cpus() -> int:
    import os

    return os.cpu_count() or 0
