"""``catentio-webhooks`` as a real child process: the environment every test process
starts from, and a spawner that never leaves one running after its test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from tests.support.services import TEST_KEY

Spawn = Callable[..., "subprocess.Popen[str]"]
"""``spawn(env, *args)``: start ``catentio-webhooks ARGS`` with ``env`` over
:func:`process_env`'s base, stdout and stderr piped as text."""


def worker_command(*args: str) -> list[str]:
    """The command line of ``catentio-webhooks ARGS`` run by this interpreter."""
    return [sys.executable, "-m", "worker", *args]


def process_env(**overrides: str) -> dict[str, str]:
    """A child's whole environment: nothing inherited but ``PATH``; the test key,
    loopback receivers allowed, JSON logs; ``overrides`` on top."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CATENTIO_LOG_FORMAT": "json",
        **overrides,
    }


@contextmanager
def spawner(**defaults: str) -> Iterator[Spawn]:
    """Yield ``spawn(env, *args)``: each child gets :func:`process_env` with
    ``defaults`` and then ``env``; every child still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []

    def spawn(
        env: dict[str, str], *args: str, stdout: int | IO[str] = subprocess.PIPE
    ) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            worker_command(*args),
            env=process_env(**{**defaults, **env}),
            text=True,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
        started.append(process)
        return process

    try:
        yield spawn
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait(10)
