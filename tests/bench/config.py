"""The benchmark's sizes and knobs, read once from ``CATENTIO_BENCH_*`` variables.

The defaults are small enough that every scenario runs in minutes on today's engine
(about 50 deliveries/s); the issue's sizes are given beside each, for the engine that
should reach them. Read by the ``bench_config`` fixture, never at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields


def _env_pairs(value: str) -> dict[str, str]:
    """``"A=1,B=2"`` → ``{"A": "1", "B": "2"}`` (values may not hold commas)."""
    pairs = {}
    for part in value.split(","):
        if not part.strip():
            continue
        name, sep, content = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r} is not NAME=value")
        pairs[name.strip()] = content.strip()
    return pairs


@dataclass(frozen=True)
class BenchConfig:
    """Every knob, with its variable name ``CATENTIO_BENCH_<FIELD>`` (upper case)."""

    # Throughput to one endpoint (issue: 20,000).
    events: int = 2000
    # Worker processes and threads per worker (poller + 2 x 8 in the issue).
    workers: int = 2
    threads: int = 8
    # Delivery threads of the embedded ``run`` on SQLite.
    embedded_threads: int = 8
    # Commit -> receipt: events per second, and for how long.
    rate: float = 50.0
    latency_seconds: float = 30.0
    # A healthy endpoint beside hanging ones: healthy events, hanging endpoint counts,
    # events each hanging endpoint is sent, longest measured window (seconds).
    hang_events: int = 1000
    hang_endpoints: str = "1,100"
    hang_backlog: int = 20
    hang_window: float = 90.0
    # Fan-out: endpoints of the workspace, and deliveries in each phase.
    fanout_endpoints: int = 1000
    fanout_deliveries: int = 2000
    # Backlog drain: the small and the large backlog (issue: 10,000 and 100,000).
    backlog_small: int = 1000
    backlog_large: int = 4000
    # Extra environment for every product process, "NAME=value,NAME=value".
    env: str = ""
    # The A/B scenario: environment of run B ("{n}" becomes the process's ordinal), and/or
    # a checkout whose worker and outbox run B's processes.
    ab_env: str = ""
    ab_checkout: str = ""
    # A checkout whose worker and outbox run every deployment of the session (a whole
    # "before" run of another engine with this harness); empty: this checkout's.
    checkout: str = ""
    # 0: launch the product without the statement counters (they cost ~2 % of a
    # worker's CPU today, by py-spy), to check what they cost.
    count: int = 1
    # Seconds of py-spy on worker 1 (run, embedded) during the throughput window; 0: off.
    pyspy: float = 0.0
    # Longest wait for any phase to finish, in seconds.
    timeout: float = 1800.0
    # Where the JSON results go (default: bench-results.json in pytest's temp dir).
    out: str = ""

    @property
    def product_env(self) -> dict[str, str]:
        return _env_pairs(self.env)

    @property
    def ab_product_env(self) -> dict[str, str]:
        return _env_pairs(self.ab_env)

    @property
    def hanging_counts(self) -> list[int]:
        return [int(v) for v in self.hang_endpoints.split(",") if v.strip()]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BenchConfig:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for spec in fields(cls):
            raw = env.get(f"CATENTIO_BENCH_{spec.name.upper()}")
            if raw is None or raw == "":
                continue
            kind = type(getattr(cls, spec.name))
            try:
                values[spec.name] = kind(raw)
            except ValueError:
                raise ValueError(f"CATENTIO_BENCH_{spec.name.upper()}={raw!r}") from None
        config = cls(**values)  # type: ignore[arg-type]
        config.product_env  # noqa: B018 - refuse a malformed value now, not mid-run
        config.ab_product_env  # noqa: B018
        return config
