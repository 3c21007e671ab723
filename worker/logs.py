"""structlog, configured once: JSON when not a terminal, readable when it is.

Context (``delivery_id``, ``event_id``, ``endpoint_id``, ``attempt``) is bound through
contextvars by the delivery code and cleared after each message by
``worker.delivery.middleware.LogContext``. Every line also says which process wrote it
(``process``: poller, worker, api, run or cli; ``host``; ``pid``), so the streams of many
processes can be merged and still be told apart. A last processor scrubs anything shaped
like a signing secret, in nested dicts and lists too, as a guard behind the rule that
secrets are never logged at all.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET = re.compile(r"\b(whsec|whsk)_[A-Za-z0-9+/=]+")


def scrub_secrets(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace ``whsec_…``/``whsk_…`` in any string field with a marker, however deeply
    it sits inside dicts, lists and tuples."""
    for key, value in event_dict.items():
        event_dict[key] = _scrubbed(value)
    return event_dict


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        if "whsec_" in value or "whsk_" in value:
            return _SECRET.sub(r"\1_[redacted]", value)
        return value
    if isinstance(value, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_scrubbed(item) for item in value)
    return value


class ProcessFields:
    """A processor that adds ``process``, ``host`` and ``pid`` to every line."""

    def __init__(self, process: str) -> None:
        self.process = process
        self.host = socket.gethostname()

    def __call__(
        self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("process", self.process)
        event_dict.setdefault("host", self.host)
        event_dict.setdefault("pid", os.getpid())  # per line: right after a fork too
        return event_dict


def configure_logging(
    *,
    level: str = "INFO",
    fmt: str = "auto",
    stream: TextIO | None = None,
    process: str = "cli",
) -> None:
    """Set up structlog, and route the standard library's logging (dramatiq, alembic,
    SQLAlchemy, httpx) through the same processors and renderer: one JSON object per
    line when not a terminal, whoever logged it. Library records are kept from WARNING
    up (DEBUG shows everything). ``process`` names the kind of process on every line."""
    out = stream or sys.stderr
    json_output = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        ProcessFields(process),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            scrub_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                scrub_secrets,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
