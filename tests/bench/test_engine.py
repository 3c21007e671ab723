"""The delivery engine against a plain httpx loop, side by side in one run.

    CATENTIO_BENCH=1 python -m pytest tests/bench/test_engine.py -s

(``CATENTIO_BENCH_EVENTS`` sets the number of events, 5,000 by default; the issue's
figures use 20,000.) The deployed topology: one ``poller`` and two ``worker`` processes
(8 dramatiq threads each) on PostgreSQL + Redis, delivering to one loopback endpoint
whose receiver runs in its own process (``engine_receiver``). Beside it, in the same run,
a plain httpx loop posts the same bodies to the same receiver on as many connections as
the endpoint may use (its concurrency limit). Reported:

* deliveries/s and its ratio to the plain loop;
* CPU per delivery from ``/proc`` for the workers, the poller, the PostgreSQL backends
  serving them (found by ``application_name``) and the receiver (per request);
* SQL statements per delivery, counted inside the processes (``engine_process``);
* the sweeper's re-rings (``outbox.swept`` log lines) while the backlog drained.

Assertions: only that every delivery arrived exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from outbox import Delivery, DeliveryStatus, publish
from outbox.database import make_engine, make_session_factory
from outbox.migrate import upgrade
from tests.conftest import TEST_KEY
from worker.endpoints import create_endpoint
from worker.secretbox import open_secret_box

EVENTS = int(os.environ.get("CATENTIO_BENCH_EVENTS", "5000"))
CONNECTIONS = 16
THREADS = 8
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class ReceiverProcess:
    """``engine_receiver`` in its own process."""

    def __init__(self, tmp: Path) -> None:
        port_file = tmp / "receiver.port"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.engine_receiver", str(port_file)]
        )
        end = time.monotonic() + 10
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > end:
                raise RuntimeError("the benchmark receiver did not start")
            time.sleep(0.05)
        self.base_url = f"http://127.0.0.1:{port_file.read_text()}"

    def answered(self) -> int:
        return int(httpx.get(f"{self.base_url}/count").text)

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def plain_loop(url: str, bodies: list[bytes], connections: int) -> float:
    """Seconds for ``connections`` threads, one httpx client each, to POST every body."""
    chunks = [bodies[i::connections] for i in range(connections)]

    def post_all(chunk: list[bytes]) -> None:
        with httpx.Client() as client:
            for body in chunk:
                client.post(url, content=body, headers={"content-type": "application/json"})

    started = time.perf_counter()
    threads = [threading.Thread(target=post_all, args=(c,)) for c in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def backend_pids(engine: sa.Engine, application: str) -> list[int]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
            {"name": application},
        )
        return [int(r[0]) for r in rows]


def succeeded(sessions: Any) -> int:
    with sessions() as session:
        return int(
            session.scalar(
                select(func.count()).where(Delivery.status == DeliveryStatus.SUCCEEDED)
            )
            or 0
        )


@pytest.mark.bench
@pytest.mark.timeout(1800)
def test_deployed_engine_beside_a_plain_httpx_loop(
    postgres_url: str, redis_server: str, redis_namespace: str, tmp_path: Path, capsys: Any
) -> None:
    application = f"catentio-bench-{uuid.uuid4().hex[:8]}"
    url = sa.engine.make_url(postgres_url)
    url = url.update_query_dict({"application_name": application})
    database_url = url.render_as_string(hide_password=False)
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    receiver = ReceiverProcess(tmp_path)
    box = open_secret_box((TEST_KEY,), database_url)
    try:
        with sessions() as session, session.begin():
            create_endpoint(
                session,
                box,
                workspace_id="ws_bench",
                url=f"{receiver.base_url}/ours",
                event_types=("*",),
                max_concurrency=CONNECTIONS,
            )
        bodies = [
            json.dumps({"i": i, "pad": "x" * 200}, separators=(",", ":")).encode()
            for i in range(EVENTS)
        ]
        receiver_cpu = receiver.cpu()
        plain = plain_loop(f"{receiver.base_url}/plain", bodies, CONNECTIONS)
        plain_receiver_cpu = receiver.cpu() - receiver_cpu

        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server,
            "CATENTIO_REDIS_NAMESPACE": redis_namespace,
            "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
            "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8",
            "CATENTIO_POLL_INTERVAL": "50ms",
            "CATENTIO_LOG_LEVEL": "INFO",
            "CATENTIO_LOG_FORMAT": "json",
        }
        roles = [("poller", ["poller"])] + [
            (f"worker{n}", ["worker", "--threads", str(THREADS)]) for n in (1, 2)
        ]
        processes: dict[str, subprocess.Popen[bytes]] = {}
        logs: dict[str, Path] = {}
        for role, args in roles:
            logs[role] = tmp_path / f"{role}.log"
            with logs[role].open("wb") as log:
                processes[role] = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.bench.engine_process",
                        str(tmp_path / f"{role}.stats"),
                        *args,
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        try:
            time.sleep(6)  # the steady state, not Python start-up
            cpu_before = {role: cpu_seconds(p.pid) for role, p in processes.items()}
            pids = backend_pids(engine, application)
            pg_before = {pid: cpu_seconds(pid) for pid in pids}
            receiver_before = receiver.cpu()
            started = time.perf_counter()
            with sessions() as session, session.begin():
                for i in range(EVENTS):
                    publish(session, workspace_id="ws_bench", type="bench.tick", data={"i": i})
            while (done := succeeded(sessions)) < EVENTS:
                if time.perf_counter() - started > 900:
                    raise AssertionError(f"only {done} of {EVENTS} delivered")
                if int(time.perf_counter() - started) % 10 == 0:
                    print(f"  ... {done} succeeded", file=sys.stderr, flush=True)
                time.sleep(0.05)
            ours = time.perf_counter() - started
            cpu_after = {role: cpu_seconds(p.pid) for role, p in processes.items()}
            pg_cpu = 0.0
            for pid in backend_pids(engine, application):
                try:
                    pg_cpu += cpu_seconds(pid) - pg_before.get(pid, 0.0)
                except FileNotFoundError:
                    pass
            receiver_cpu = receiver.cpu() - receiver_before
        finally:
            for process in processes.values():
                process.send_signal(signal.SIGTERM)
            for process in processes.values():
                process.wait(60)
        answered = receiver.answered()
    finally:
        receiver.stop()
        engine.dispose()
    assert answered == 2 * EVENTS  # the plain loop's and ours, each exactly once
    stats = {role: json.loads((tmp_path / f"{role}.stats").read_text()) for role, _ in roles}
    swept = sum(
        json.loads(line).get("deliveries", 0)
        for line in logs["poller"].read_text().splitlines()
        if '"outbox.swept"' in line
    )
    worker_cpu = sum(cpu_after[r] - cpu_before[r] for r in ("worker1", "worker2"))
    poller_cpu = cpu_after["poller"] - cpu_before["poller"]
    statements = sum(s["statements"] for s in stats.values())
    per_role = ", ".join(f"{r} {s['statements']}" for r, s in stats.items())
    with capsys.disabled():
        print(
            f"\n{EVENTS} events to one loopback endpoint (max_concurrency {CONNECTIONS}),"
            f" poller + 2 workers x {THREADS} threads, PostgreSQL + Redis\n"
            f"  plain httpx loop, {CONNECTIONS} connections: {EVENTS / plain:8.0f} posts/s"
            f"  (receiver {1000 * plain_receiver_cpu / EVENTS:.3f} ms CPU/request)\n"
            f"  ours, commit -> all recorded:  {EVENTS / ours:8.0f} deliveries/s"
            f"  = {plain / ours:.3f} x the plain loop\n"
            f"  CPU per delivery: workers {1000 * worker_cpu / EVENTS:.2f} ms,"
            f" PostgreSQL backends {1000 * pg_cpu / EVENTS:.2f} ms,"
            f" poller {1000 * poller_cpu / EVENTS:.2f} ms,"
            f" receiver {1000 * receiver_cpu / EVENTS:.3f} ms\n"
            f"  SQL statements per delivery (whole run incl. idle polling):"
            f" {statements / EVENTS:.2f}"
            f" ({per_role})\n"
            f"  sweeper re-rings: {swept}"
        )
