"""The baseline: plain httpx clients POSTing the same bodies to the same receiver.

    python -m tests.bench.plain_loop URL THREADS BODIES_FILE

``THREADS`` threads, each with its own ``httpx.Client`` (one keep-alive connection), share
the bodies (a JSON list of strings) and POST each once; no signing, no database. Prints
one JSON line: ``posts``, ``errors``, ``seconds`` (wall time of the loop, from the moment
every thread is ready) and ``cpu`` (this process's CPU seconds over the loop). It runs in
its own process so its CPU is its own and it cannot slow the benchmark's bookkeeping.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.bench import procstat


@dataclass(frozen=True)
class LoopResult:
    """What one run of the loop did."""

    posts: int
    errors: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.posts / self.seconds


def loop(url: str, bodies: list[bytes], threads: int) -> dict[str, Any]:
    """POST every body once over ``threads`` clients; the figures as a dict."""
    chunks = [bodies[i::threads] for i in range(threads)]
    errors = [0] * threads
    ready = threading.Barrier(threads + 1)
    headers = {"content-type": "application/json"}

    def post_all(index: int) -> None:
        with httpx.Client(trust_env=False, timeout=30) as client:
            client.get(url.rsplit("/", 1)[0] + "/warm")  # connect before the clock starts
            ready.wait()
            for body in chunks[index]:
                try:
                    response = client.post(url, content=body, headers=headers)
                    if response.status_code != 200:
                        errors[index] += 1
                except httpx.HTTPError:
                    errors[index] += 1

    workers = [threading.Thread(target=post_all, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    cpu_before = procstat.read(os.getpid())
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    cpu_after = procstat.read(os.getpid())
    assert cpu_before is not None and cpu_after is not None
    return {
        "posts": len(bodies),
        "errors": sum(errors),
        "seconds": seconds,
        "cpu": cpu_after.cpu - cpu_before.cpu,
    }


def run_loop(url: str, threads: int, bodies_file: Path, workdir: Path) -> LoopResult:
    """Run the loop in a child process and read its result."""
    import subprocess

    completed = subprocess.run(
        [sys.executable, "-m", "tests.bench.plain_loop", url, str(threads), str(bodies_file)],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=3600,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"plain loop failed: {completed.stderr.strip()[-2000:]}")
    values = json.loads(completed.stdout.strip().splitlines()[-1])
    return LoopResult(**values)


if __name__ == "__main__":
    target, count, path = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    payloads = [body.encode() for body in json.loads(path.read_text())]
    print(json.dumps(loop(target, payloads, count)))
