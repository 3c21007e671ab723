"""Whether one of our own dependencies (the database, the broker) is up, logged only
when that changes.

An outage is one state change, not one error per message: the first failure logs
``<name>.unavailable`` once; from then on a watcher thread probes the dependency with
a growing delay, and the first success (the probe's, or anyone's) logs
``<name>.recovered`` with the outage's duration. Whoever needs the dependency meanwhile
waits on :meth:`Availability.wait` instead of failing and retrying in a tight loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

Probe = Callable[[], None]
"""Raises if the dependency does not answer; returns if it does."""

MIN_PROBE_DELAY = 0.2
"""Seconds before the first probe after a failure."""

MAX_PROBE_DELAY = 5.0
"""Longest pause between two probes during an outage, in seconds."""


def first_line(error: BaseException) -> str:
    """An error's first line: enough to say what failed, never a traceback."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


class Availability:
    """The up/down state of one dependency, shared by every thread of a process."""

    def __init__(
        self,
        name: str,
        *,
        probe: Probe | None = None,
        min_delay: float = MIN_PROBE_DELAY,
        max_delay: float = MAX_PROBE_DELAY,
    ) -> None:
        self.name = name
        self._probe = probe
        self._min_delay = min_delay
        self._max_delay = max_delay
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._up.set()
        self._down_since: float | None = None
        self._watcher: threading.Thread | None = None
        self._closed = threading.Event()

    @property
    def is_up(self) -> bool:
        """Whether the last thing we heard was a success."""
        return self._up.is_set()

    def failed(self, error: BaseException) -> None:
        """Report a failure that means the dependency is unreachable. Logs
        ``<name>.unavailable`` only if it was up, and starts probing for its return."""
        with self._lock:
            if not self._up.is_set():
                return
            self._up.clear()
            self._down_since = time.monotonic()
            log.warning(f"{self.name}.unavailable", error=first_line(error))
            if self._probe is not None and not self._closed.is_set():
                self._watcher = threading.Thread(
                    target=self._watch, name=f"catentio-{self.name}-probe", daemon=True
                )
                self._watcher.start()

    def succeeded(self) -> None:
        """Report a success; logs ``<name>.recovered`` (with ``outage_s``) if it was down."""
        if self._up.is_set():
            return
        with self._lock:
            if self._up.is_set():
                return
            since = self._down_since or time.monotonic()
            self._down_since = None
            self._up.set()
            log.info(f"{self.name}.recovered", outage_s=round(time.monotonic() - since, 1))

    def wait(self, timeout: float | None = None, *, stop: threading.Event | None = None) -> bool:
        """Block until the dependency is up again, ``timeout`` passes or ``stop`` is
        set; True if it is up."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._up.is_set():
            if (stop is not None and stop.is_set()) or self._closed.is_set():
                return False
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                return False
            self._up.wait(left)
        return True

    def close(self) -> None:
        """Stop probing (the process is shutting down). Still down: one last probe, so
        an outage that ended since the last one is told as ended (``recovered``); the
        work may have gone on without this dependency meanwhile."""
        self._closed.set()
        if self._up.is_set() or self._probe is None:
            return
        try:
            self._probe()
        except Exception:  # still down as the process stops: nothing more to tell
            return
        self.succeeded()

    def _watch(self) -> None:
        assert self._probe is not None
        delay = self._min_delay
        while not self._up.is_set() and not self._closed.wait(delay):
            try:
                self._probe()
            except Exception:  # still down: the first failure said so already
                delay = min(delay * 2, self._max_delay)
                continue
            self.succeeded()
