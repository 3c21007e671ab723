"""Start a real ``catentio-webhooks`` process with metrics on and scrape it."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import process_env, worker_command


@dataclass
class Metered:
    """A running process, its metrics port, and the JSON lines it logged so far."""

    process: subprocess.Popen[str]
    lines: list[dict[str, object]] = field(default_factory=list)
    port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scrape(self) -> dict[str, float]:
        """``/metrics`` as {"name{label=value,…}": value}."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=10).text
        return parse(text)

    def families(self) -> set[str]:
        """The metric family names this process exports."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=10).text
        names = set()
        for family in text_string_to_metric_families(text):
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
        return names


def parse(text: str) -> dict[str, float]:
    """Prometheus text → {"name{a=x,b=y}": value}, labels sorted."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


@contextmanager
def metered(
    env: dict[str, str],
    *args: str,
    timeout: float = 30,
    listening_event: str = "metrics.listening",
) -> Iterator[Metered]:
    """Run ``catentio-webhooks ARGS`` with ``CATENTIO_METRICS_PORT=0`` (a free port, read
    back from its ``metrics.listening`` line); SIGTERM and wait on exit. An empty value
    in ``env`` unsets that variable; ``listening_event`` names the log line whose
    ``port`` serves ``/metrics`` (``api.started`` with ``CATENTIO_API_METRICS``)."""
    merged = process_env(**{"CATENTIO_METRICS_PORT": "0", **env})
    full_env = {k: v for k, v in merged.items() if v != ""}
    process = subprocess.Popen(
        worker_command(*args),
        env=full_env,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    running = Metered(process)
    listening = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            if not raw.startswith("{"):
                continue
            line = json.loads(raw)
            running.lines.append(line)
            if line.get("event") == listening_event:
                running.port = int(str(line["port"]))
                listening.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while not listening.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{args} did not start its metrics listener: {running.lines}")
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        reader.join(5)
        if process.stderr is not None:
            process.stderr.close()
