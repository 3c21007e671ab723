"""Start-up checks of the long-running processes, each a bounded wait.

``poller``, ``worker`` and ``run`` do not start work until the database answers, its
schema is the one this code needs, Redis answers and the encryption keys open the
stored secrets. Waiting is logged once (``startup.waiting`` with what for and for how
long at most); past the bound (``CATENTIO_STARTUP_TIMEOUT``) the process stops with one
line and exit code 1. Keys that cannot open a stored secret stop it at once with a line
naming ``CATENTIO_ENCRYPTION_KEYS`` (exit code 2): waiting cannot fix them.

The probes are those of ``catentio-webhooks check`` (``worker.ops.checks``): one
definition of "the database answers", "the schema is current" and "the keys open the
secrets", waited on here, reported there.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dramatiq
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from worker.availability import first_line
from worker.delivery.broker import ping
from worker.endpoints.secretbox import SecretBox
from worker.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DatabaseUnavailable,
    OwnFailure,
    SchemaNotReady,
)
from worker.ops import checks

log = structlog.get_logger("worker.startup")

RETRY_INTERVAL = 0.5
"""Seconds between two checks while waiting."""


def wait_for(
    what: str, check: Callable[[], None], *, timeout: float, failure: type[OwnFailure]
) -> None:
    """Call ``check`` until it returns, for at most ``timeout`` seconds. The first
    failure is logged once; the last one, past the bound, is raised as ``failure``."""
    deadline = time.monotonic() + timeout
    logged = False
    while True:
        try:
            check()
            if logged:
                log.info("startup.ready", ready=what)
            return
        except Exception as exc:
            if isinstance(exc, ConfigurationError):
                raise
            if time.monotonic() >= deadline:
                raise failure(
                    f"{what} not ready after {timeout:g}s (CATENTIO_STARTUP_TIMEOUT): "
                    f"{first_line(exc)}"
                ) from None
            if not logged:
                log.warning(
                    "startup.waiting", waiting_for=what, timeout_s=timeout, error=first_line(exc)
                )
                logged = True
        time.sleep(min(RETRY_INTERVAL, max(0.0, deadline - time.monotonic())))


def database_answers(engine: Engine) -> Callable[[], None]:
    """A check that the database accepts a connection and a statement."""
    return lambda: checks.require_database(engine)


def schema_is_current(engine: Engine) -> Callable[[], None]:
    """A check that the schema is at this code's head revision. A revision this code
    does not know (newer code, another application) fails the start at once."""
    return lambda: checks.require_schema_at_head(engine)


def broker_answers(broker: dramatiq.Broker) -> Callable[[], None]:
    """A check that Redis answers a PING."""
    return lambda: ping(broker)


def check_database(
    engine: Engine, sessions: sessionmaker[Session], box: SecretBox, *, timeout: float
) -> None:
    """The database answers, its schema is current and the keys open its secrets."""
    wait_for("database", database_answers(engine), timeout=timeout, failure=DatabaseUnavailable)
    wait_for("database schema", schema_is_current(engine), timeout=timeout, failure=SchemaNotReady)
    checks.require_keys_open_secrets(sessions, box)


def check_broker(broker: dramatiq.Broker, *, timeout: float) -> None:
    """Redis answers."""
    wait_for("redis", broker_answers(broker), timeout=timeout, failure=BrokerUnavailable)
