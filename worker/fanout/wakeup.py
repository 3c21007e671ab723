"""Waking the poller when an event is committed, instead of waiting for its next poll.

- PostgreSQL: a :class:`Listener` thread holds one dedicated psycopg connection that
  ``LISTEN``s on the schema's channel; ``publish()`` and the SQL function ``NOTIFY`` it in
  the producer's transaction. When the connection drops, the poller falls back to its
  adaptive polling while the listener reconnects (with backoff), and it polls once as soon
  as it listens again, so whatever was committed meanwhile is found.
- SQLite (embedded): :func:`wake_on_commit` rings when a connection of this process that
  published commits.

Either way the poller sleeps on a :class:`Wakeup`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import structlog
from sqlalchemy import event
from sqlalchemy.engine import Engine

from outbox.namespace import namespace_of
from outbox.notify import PUBLISHED

log = structlog.get_logger("worker.fanout.wakeup")

STOP_CHECK_INTERVAL = 0.2
"""Longest the poller sleeps on a wake-up before looking at its stop flag again."""

DEFAULT_RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
"""Seconds between reconnection attempts of the listener (the last one repeats)."""

DEFAULT_HEALTH_INTERVAL = 10.0
"""Seconds of silence after which the listener checks its connection with a query."""

APPLICATION_NAME = "catentio-webhooks-listen"
"""``application_name`` of the listening connection (what ops see in pg_stat_activity)."""


class Wakeup:
    """A doorbell the poller sleeps on: rung by a notification or an in-process commit."""

    def __init__(self) -> None:
        self._rung = threading.Event()
        self.listening = False
        """True while a LISTEN connection is up, so no commit can go unnoticed."""

    def ring(self) -> None:
        """Wake the poller (or make its next sleep return at once)."""
        self._rung.set()

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """Sleep up to ``seconds``, less if rung or stopped; return whether it was rung."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._rung.wait(min(left, STOP_CHECK_INTERVAL)):
                self._rung.clear()
                return True
        return False


def wake_on_commit(engine: Engine, wakeup: Wakeup) -> None:
    """Ring ``wakeup`` whenever a connection of ``engine`` that published commits."""

    @event.listens_for(engine, "commit")
    def _committed(connection: Any) -> None:
        if connection.info.pop(PUBLISHED, False):
            wakeup.ring()

    @event.listens_for(engine, "rollback")
    def _rolled_back(connection: Any) -> None:
        connection.info.pop(PUBLISHED, None)


class Listener:
    """A thread that ``LISTEN``s for published events on PostgreSQL and rings a wakeup."""

    def __init__(
        self,
        engine: Engine,
        wakeup: Wakeup,
        *,
        reconnect_delays: tuple[float, ...] = DEFAULT_RECONNECT_DELAYS,
        health_interval: float = DEFAULT_HEALTH_INTERVAL,
    ) -> None:
        url = engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self.channel = namespace_of(engine).channel
        self.wakeup = wakeup
        self._delays = reconnect_delays
        self._health_interval = health_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0  # reconnection attempts since the connection was last up
        self.backend_pid: int | None = None
        """The server process of the current LISTEN connection (None while down)."""
        self.connections = 0
        """How many times a LISTEN connection was established."""

    def start(self) -> Listener:
        """Start listening in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="catentio-listen", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                was_listening = self.wakeup.listening
                self._down()
                delay = self._delays[min(self._failures, len(self._delays) - 1)]
                if was_listening or self._failures == 0:
                    # One line per state change: the retries that follow stay quiet
                    # until "wakeup.listening" says it is back.
                    log.warning(
                        "wakeup.listen_lost",
                        error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                        fallback="adaptive polling",
                    )
                self._failures += 1
                self._stop.wait(delay)
        self._down()

    def _listen(self) -> None:
        with psycopg.connect(
            self._conninfo,
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=30,
        ) as connection:
            connection.execute(f'LISTEN "{self.channel}"')
            self.backend_pid = connection.info.backend_pid
            self.connections += 1
            self._failures = 0
            self.wakeup.listening = True
            # Anything committed before LISTEN took effect is found by this poll.
            self.wakeup.ring()
            log.info("wakeup.listening", channel=self.channel, backend_pid=self.backend_pid)
            quiet_since = time.monotonic()
            while not self._stop.is_set():
                heard = False
                for _ in connection.notifies(timeout=STOP_CHECK_INTERVAL * 5):
                    heard = True
                    self.wakeup.ring()
                if heard:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= self._health_interval:
                    connection.execute("SELECT 1")
                    quiet_since = time.monotonic()

    def _down(self) -> None:
        self.wakeup.listening = False
        self.backend_pid = None
