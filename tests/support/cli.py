"""Running ``catentio-webhooks`` through its real entry point, in this process.

Every command configures logging onto the runner's stream, which is closed once the
command returns; :func:`run_cli` puts structlog and the standard library's logging
back as they were, so the next test (or command) logs where it expects to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog
from click.testing import CliRunner, Result

from tests.support.services import TEST_KEY
from worker.cli import main

Invoke = Callable[..., Result]
"""``cli(*args, input=None, **env)``, as the ``cli`` fixtures give it."""

LOGGED = {"CATENTIO_LOG_LEVEL": "INFO", "CATENTIO_LOG_FORMAT": "json"}
"""Environment for a run whose INFO log lines (JSON, on stderr) the test reads."""


@contextmanager
def logging_restored() -> Iterator[None]:
    """Put structlog's and the standard library's logging back as they were: the
    command line configures both onto its own (then closed) stream."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a command line run against ``database_url`` (warnings only in
    the logs, so stderr holds the command's own error line)."""
    return {
        "DATABASE_URL": database_url,
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CATENTIO_LOG_LEVEL": "WARNING",
        "REDIS_URL": "",
        **extra,
    }


def run_cli(
    env: dict[str, str], *args: str, input: str | None = None, catch_exceptions: bool = True
) -> Result:
    """Run ``catentio-webhooks ARGS`` with ``env`` (stdout and stderr kept apart);
    logging is left as it was found."""
    with logging_restored():
        return CliRunner().invoke(
            main, list(args), env=env, input=input, catch_exceptions=catch_exceptions
        )
