"""Traces, optional: the interface the runtime and the poller call, a no-op by default.

Tracing is on only where ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; then
:func:`open_tracing` imports OpenTelemetry (the ``[otel]`` extra) and returns
:class:`worker.telemetry.otel.OTelTracing`. Nothing here imports OpenTelemetry, so the
default install neither needs nor loads it.

The trace of an event: the poller's ``webhook.fan_out`` span (the batch's SQL inside)
rings the deliveries; the trace context travels in each dramatiq message, so the
worker's ``webhook.deliver`` span (its claim and record SQL and the ``POST`` inside) is
its child, carrying the event, delivery and endpoint ids and the attempt number.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import httpx
from sqlalchemy.engine import Engine

from worker.errors import ConfigurationError
from worker.settings import Settings


class Tracing:
    """What the runtime asks of tracing. This base class traces nothing."""

    enabled = False

    @contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Any]:
        """A span around the block (here: nothing); yields an object with
        ``set_attribute(key, value)``."""
        yield _NO_SPAN

    def instrument_engine(self, engine: Engine) -> None:
        """Trace the SQL ``engine`` runs."""

    def wrap_transport(self, transport: httpx.BaseTransport) -> httpx.BaseTransport:
        """Trace the requests sent through ``transport``."""
        return transport

    def middleware(self) -> dramatiq.Middleware | None:
        """The dramatiq middleware that carries the trace context in messages."""
        return None

    def shutdown(self) -> None:
        """Flush and stop exporting."""


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        return


_NO_SPAN = _NoSpan()

NO_TRACING = Tracing()
"""The default: traces nothing."""


def open_tracing(settings: Settings, *, process: str) -> Tracing:
    """OpenTelemetry tracing when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, else
    :data:`NO_TRACING`. Raises :class:`~worker.errors.ConfigurationError` when it is set
    but the ``[otel]`` extra is not installed."""
    if not settings.otel_endpoint:
        return NO_TRACING
    try:
        from worker.telemetry.otel import OTelTracing
    except ImportError as exc:
        raise ConfigurationError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            f"pip install 'catentio-webhooks[otel]' ({exc.name} is missing)"
        ) from None
    return OTelTracing.exporting_otlp(process=process)
