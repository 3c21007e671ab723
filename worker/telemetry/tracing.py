"""Traces, optional: the interface the runtime and the poller call, a no-op by default.

Tracing is on only where ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; then
:func:`open_tracing` imports OpenTelemetry (the ``[otel]`` extra) and returns
:class:`worker.telemetry.otel.OTelTracing`. Nothing here imports OpenTelemetry, so the
default install neither needs nor loads it.

The trace of an event: the producer's span (``outbox.publish()`` stores its W3C trace
context with the event; for ``POST /v1/events`` it is the API request's span), then
the poller's ``webhook.fan_out`` span, its child (the batch's SQL inside), which rings
the deliveries; the trace context travels in each dramatiq message, so the worker's
``webhook.deliver`` span (its claim and record SQL and the ``POST`` inside) is its
child, carrying the event, delivery and endpoint ids and the attempt number.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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

    @contextmanager
    def continuing(
        self, name: str, carriers: Sequence[Mapping[str, str] | None], **attributes: Any
    ) -> Iterator[Any]:
        """A span around the block that continues the producers' traces, one W3C
        carrier per event (``None``: that producer did not trace). Here: nothing."""
        yield _NO_SPAN

    @contextmanager
    def request_span(self, method: str, headers: Mapping[str, str]) -> Iterator[Any]:
        """A SERVER span around an HTTP request the API answers, current within it and
        a child of the request's ``traceparent`` header if it has one. Yields an object
        whose ``finish(route, status)`` names the span after the route template and
        records the response status. Here: nothing."""
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

    def finish(self, route: str, status: int) -> None:
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
