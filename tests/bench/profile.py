"""Optional: where a product process spends its CPU, sampled by py-spy during a window.

    pip install py-spy
    CATENTIO_BENCH=1 CATENTIO_BENCH_PYSPY=20 \\
        python -m pytest tests/bench -k 'throughput and distributed'

``py-spy record --gil`` samples only the thread holding the GIL, so the shares are shares
of the process's Python CPU. Reported: the functions with the largest share of samples
anywhere on the stack (inclusive), and the share of samples whose innermost frame is in
each library (exclusive: sqlalchemy, psycopg, httpx, dramatiq, redis, the product's own
packages, the standard library). The raw collapsed stacks stay in the scenario's
directory for a flame graph.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


@dataclass
class Profile:
    """Inclusive shares by function, exclusive shares by library, of ``samples``."""

    samples: int
    functions: list[tuple[str, float]]
    libraries: list[tuple[str, float]]
    raw_path: Path


class Sampler:
    """``py-spy record`` on one process for ``seconds``, started by :meth:`start`."""

    def __init__(self, pid: int, seconds: float, raw_path: Path) -> None:
        self.pid = pid
        self.seconds = seconds
        self.raw_path = raw_path
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("py-spy") is not None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                "py-spy",
                "record",
                "--pid",
                str(self.pid),
                "--duration",
                str(int(self.seconds)),
                "--rate",
                "200",
                "--gil",
                "--format",
                "raw",
                "--output",
                str(self.raw_path),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def finish(self, top: int = 25) -> Profile | None:
        """Wait for py-spy (it stops by itself after ``seconds``); the profile."""
        if self._process is None:
            return None
        try:
            self._process.wait(self.seconds + 60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if not self.raw_path.exists():
            return None
        return summarise(self.raw_path, top)


def summarise(raw_path: Path, top: int = 25) -> Profile:
    """Shares from py-spy's collapsed stacks (``frame;frame;… count`` per line)."""
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    total = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        for name in {name for name, _ in frames}:
            inclusive[name] += count
        exclusive[_library(frames[-1][1])] += count
    share = 100.0 / total if total else 0.0
    return Profile(
        samples=total,
        functions=[(name, n * share) for name, n in inclusive.most_common(top)],
        libraries=[(name, n * share) for name, n in exclusive.most_common()],
        raw_path=raw_path,
    )


def _frame(text: str) -> tuple[str, str]:
    """``function (file:line)`` → (``function (file)``, file). py-spy already shortens
    the file to its path below the ``sys.path`` entry it was found in."""
    match = _FRAME.match(text.strip())
    if match is None:
        return text.strip(), ""
    path = match["file"].split("site-packages/", 1)[-1]
    return f"{match['function']} ({path})", path


def _library(path: str) -> str:
    """The top-level package of a (shortened) file: ``sqlalchemy``, ``stdlib``, …

    A file py-spy shows without a folder is a standard-library module or one of the
    product's (``worker`` is a namespace package, whose folder py-spy leaves out)."""
    head, slash, _ = path.partition("/")
    if slash and not path.startswith("<"):
        return "stdlib" if head in sys.stdlib_module_names else head
    if path.startswith("<") or path.removesuffix(".py") in sys.stdlib_module_names:
        return "stdlib"
    return "worker" if path else "?"


def profile_text(scenario: str, process: str, profile: Profile) -> str:
    """The profile's top entries, for the end of the run."""
    lines = [f"py-spy --gil, {process}, {scenario}: {profile.samples} samples"]
    lines += ["  by library (innermost frame):"]
    lines += [f"    {share:5.1f} %  {name}" for name, share in profile.libraries[:12]]
    lines += ["  by function (anywhere on the stack):"]
    lines += [f"    {share:5.1f} %  {name}" for name, share in profile.functions]
    lines += [f"  raw stacks: {profile.raw_path}"]
    return "\n".join(lines)
