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
    """Set up structlog (and the standard library's logging, which dramatiq uses)."""
    out = stream or sys.stderr
    json_output = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            scrub_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=max(numeric, logging.WARNING),
        stream=out,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        force=True,
    )
