"""What a measured window cost: CPU, statements and memory of every process, by role.

A :class:`Snapshot` is taken at each end of a window (see ``Deployment.snapshot``); the
difference of two is a :class:`Usage`, which divides by the deliveries made in between.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.bench.backends import Backend
from tests.bench.procstat import ProcSample


@dataclass(frozen=True)
class Snapshot:
    """Everything read at one moment."""

    time: float
    processes: dict[str, ProcSample]  # by process name (worker1, poller, run, ...)
    counts: dict[str, dict[str, int]]  # instrumented counters, by process name
    backends: dict[int, Backend]
    receiver_cpu: float
    receiver_requests: int
    machine_busy: float = 0.0  # the whole machine's busy CPU seconds (procstat.machine_busy)
    harness_cpu: float = 0.0  # the benchmark's own process


def role(name: str) -> str:
    """``worker2`` → ``worker``."""
    return name.rstrip("0123456789")


@dataclass
class Usage:
    """The difference between two snapshots."""

    seconds: float
    cpu: dict[str, float]  # by process name
    rss: dict[str, int]  # at the end, by process name
    counts: dict[str, Counter[str]]
    backend_cpu: dict[str, float]  # by the role of the process served
    receiver_cpu: float
    receiver_requests: int
    # CPU seconds of everything else on the machine meanwhile (other engineers' tests):
    # the machine's busy time minus ours, the backends', the receiver's and the harness's.
    others_cpu: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def between(cls, start: Snapshot, end: Snapshot) -> Usage:
        cpu = {
            name: sample.cpu - start.processes[name].cpu
            for name, sample in end.processes.items()
            if name in start.processes
        }
        counts = {
            name: Counter({k: v - start.counts.get(name, {}).get(k, 0) for k, v in values.items()})
            for name, values in end.counts.items()
        }
        backend_cpu: dict[str, float] = defaultdict(float)
        for pid, backend in end.backends.items():
            before = start.backends.get(pid)
            backend_cpu[backend.role] += backend.cpu - (before.cpu if before else 0.0)
        receiver_cpu = end.receiver_cpu - start.receiver_cpu
        ours = (
            sum(cpu.values())
            + sum(backend_cpu.values())
            + receiver_cpu
            + (end.harness_cpu - start.harness_cpu)
        )
        return cls(
            seconds=end.time - start.time,
            cpu=cpu,
            rss={name: sample.rss_bytes for name, sample in end.processes.items()},
            counts=counts,
            backend_cpu=dict(backend_cpu),
            receiver_cpu=receiver_cpu,
            receiver_requests=end.receiver_requests - start.receiver_requests,
            others_cpu=max(0.0, end.machine_busy - start.machine_busy - ours),
        )

    def cpu_by_role(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for name, seconds in self.cpu.items():
            totals[role(name)] += seconds
        return dict(totals)

    def counts_by_role(self) -> dict[str, Counter[str]]:
        totals: dict[str, Counter[str]] = defaultdict(Counter)
        for name, values in self.counts.items():
            totals[role(name)].update(values)
        return dict(totals)

    def receiver_cpu_per_request(self) -> float | None:
        if self.receiver_requests <= 0:
            return None
        return self.receiver_cpu / self.receiver_requests

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "cpu_s": self.cpu,
            "rss_bytes": self.rss,
            "counts": {k: dict(v) for k, v in self.counts.items()},
            "postgres_backend_cpu_s": self.backend_cpu,
            "receiver_cpu_s": self.receiver_cpu,
            "receiver_requests": self.receiver_requests,
            "others_cpu_s": self.others_cpu,
            **self.extra,
        }
