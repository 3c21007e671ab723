"""structlog, configured once: JSON when not a terminal, readable when it is.

Context (``delivery_id``, ``event_id``, ``endpoint_id``, ``attempt``) is bound through
contextvars by the delivery code and cleared after each message by
``worker.delivery.middleware.LogContext``. A last processor scrubs anything shaped like
a signing secret, as a guard behind the rule that secrets are never logged at all.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET = re.compile(r"\b(whsec|whsk)_[A-Za-z0-9+/=]+")


def scrub_secrets(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace ``whsec_…``/``whsk_…`` values in any string field with a marker."""
    for key, value in event_dict.items():
        if isinstance(value, str) and ("whsec_" in value or "whsk_" in value):
            event_dict[key] = _SECRET.sub(r"\1_[redacted]", value)
    return event_dict


def configure_logging(
    *, level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None
) -> None:
    """Set up structlog, and route the standard library's logging (dramatiq, alembic,
    SQLAlchemy, httpx) through the same processors and renderer: one JSON object per
    line when not a terminal, whoever logged it. Library records are kept from WARNING
    up (DEBUG shows everything)."""
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
