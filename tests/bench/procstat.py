"""CPU time and memory of a process, read from ``/proc/<pid>/stat`` and ``/proc/<pid>/status``.

CPU time is what the benchmark compares: on a shared, noisy machine the wall time of a
run swings with the neighbours' load, the CPU a process spends per delivery much less.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    """One reading: CPU seconds (user + system, with waited-for children) and RSS."""

    cpu: float
    rss_bytes: int


def read(pid: int) -> ProcSample | None:
    """The process's CPU seconds and resident memory, or ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = raw[raw.rindex(b")") + 2 :].split()
    # Fields 14-17 of the man page (utime, stime, cutime, cstime) are 11-14 here.
    ticks = sum(int(value) for value in fields[11:15])
    rss_pages = int(fields[21])
    return ProcSample(cpu=ticks / CLOCK_TICKS, rss_bytes=rss_pages * os.sysconf("SC_PAGE_SIZE"))


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot, summed over its cores
    (``/proc/stat``: everything but idle and iowait)."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def peak_rss(pid: int) -> int | None:
    """The process's peak resident memory so far (``VmHWM``), in bytes."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None
