"""Measured windows: publish a backlog in one commit, time its drain, take the usage.

The window opens right before the producer's COMMIT (nothing is visible earlier) and
closes when the last delivery is recorded as succeeded, or after a cap. Its CPU, counters
and backends come from snapshots at both ends (:mod:`tests.bench.usage`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.bench.deployment import Deployment, Group, Published
from tests.bench.usage import Snapshot, Usage

WARM_UP_EVENTS = 100
"""Events delivered before any window, so pools, threads and caches are warm."""


@dataclass
class Drain:
    """One measured window."""

    published: Published
    delivered: int
    seconds: float
    finished: bool
    usage: Usage
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


def warm_up(deployment: Deployment, *, timeout: float, events: int = WARM_UP_EVENTS) -> None:
    """Deliver ``events`` to a workspace of its own (an endpoint is added for it before
    the processes start: see :func:`add_warm_up_endpoint`)."""
    before = deployment.succeeded("ws_warm")
    published = deployment.publish([Group("ws_warm", events)])
    if (
        deployment.wait_for(
            before + events, workspace="ws_warm", timeout=timeout, since=published.committed_at
        )
        is None
    ):
        raise AssertionError(f"warm-up: {events} deliveries did not succeed in {timeout:.0f}s")


def add_warm_up_endpoint(deployment: Deployment) -> str:
    return deployment.add_endpoint(workspace="ws_warm", path=f"/ok/warm-{deployment.tag}")


def drain(
    deployment: Deployment,
    groups: list[Group],
    *,
    workspace: str,
    expect: int,
    timeout: float,
    sample: Callable[[], dict[str, Any]] | None = None,
    sample_every: float = 1.0,
    on_commit: Callable[[], None] | None = None,
) -> Drain:
    """Publish ``groups`` in one commit and wait until ``expect`` more deliveries of
    ``workspace`` have succeeded (or ``timeout`` passed: ``finished`` is then False and
    ``delivered`` what got through). ``sample`` is called every ``sample_every`` seconds
    during the window (broker size, memory, …); ``on_commit`` right after the commit."""
    base = deployment.succeeded(workspace)
    start: list[Snapshot] = []
    published = deployment.publish(
        groups, before_commit=lambda: start.append(deployment.snapshot())
    )
    if on_commit is not None:
        on_commit()
    samples: list[dict[str, Any]] = []
    stop = threading.Event()
    sampler = None
    if sample is not None:

        def keep_sampling() -> None:
            while not stop.wait(sample_every):
                samples.append(sample())

        sampler = threading.Thread(target=keep_sampling, name="bench-sampler", daemon=True)
        sampler.start()
    try:
        done_at = deployment.wait_for(
            base + expect, workspace=workspace, timeout=timeout, since=published.committed_at
        )
    finally:
        stop.set()
        if sampler is not None:
            sampler.join(30)
    end = deployment.snapshot()
    delivered = deployment.succeeded(workspace) - base if done_at is None else expect
    finished_at = done_at if done_at is not None else end.time
    return Drain(
        published=published,
        delivered=delivered,
        seconds=finished_at - published.committed_at,
        finished=done_at is not None,
        usage=Usage.between(start[0], end),
        samples=samples,
    )
