"""aiohttp against ``httpx.AsyncClient`` as the sending loop's client, side by side.

Both post the same body to the same receiver with the same number of requests in
flight, each in a process of its own, alternating A B A B so that the machine's load
falls on both alike; CPU per request is from ``/proc``. The engine keeps aiohttp only
while it is measurably cheaper (see ``worker.http.aio``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from statistics import median

import pytest

from tests.bench.receiver import ReceiverProcess
from tests.bench.results import Results

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 3
POSTS = 4000


def _run(kind: str, url: str, in_flight: int) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.bench.senders", kind, url, str(in_flight), str(POSTS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("in_flight", [16, 128])
def test_aiohttp_against_httpx_async(
    bench_receiver: ReceiverProcess, bench_results: Results, in_flight: int
) -> None:
    url = bench_receiver.url("/ok/senders")
    runs: dict[str, list[dict[str, float]]] = {"aiohttp": [], "httpx": []}
    receiver_cpu: list[float] = []
    for _ in range(ROUNDS):
        for kind in runs:
            before = bench_receiver.stats()["cpu"]
            runs[kind].append(_run(kind, url, in_flight))
            receiver_cpu.append((bench_receiver.stats()["cpu"] - before) / POSTS)
    scenario = f"senders, {in_flight} in flight"
    cpu = {k: median(r["cpu"] / r["posts"] * 1000 for r in v) for k, v in runs.items()}
    rate = {k: median(r["posts"] / r["seconds"] for r in v) for k, v in runs.items()}
    for kind in runs:
        bench_results.add(scenario, f"{kind} CPU per request", cpu[kind], "ms")
        bench_results.add(scenario, f"{kind} requests/s", rate[kind], "/s")
        errors = sum(r["errors"] for r in runs[kind])
        bench_results.add(scenario, f"{kind} failed requests (of {ROUNDS * POSTS})", errors)
    bench_results.add(
        scenario,
        "aiohttp ÷ httpx CPU per request",
        cpu["aiohttp"] / cpu["httpx"],
        "ratio",
        ratio=cpu["aiohttp"] / cpu["httpx"],
        versus="httpx.AsyncClient",
    )
    bench_results.add(scenario, "receiver CPU per request", median(receiver_cpu) * 1000, "ms")
