"""Traces, optional: the interface the runtime and the poller call, a no-op by default.

Tracing is on only where ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; then
:func:`open_tracing` imports OpenTelemetry (the ``[otel]`` extra) and returns
:class:`worker.telemetry.otel.OTelTracing`. Nothing here imports OpenTelemetry, so the
default install neither needs nor loads it.

The trace of an event: the producer's span (``outbox.publish()`` stores its W3C trace
context with the event; for ``POST /v1/events`` it is the API request's span), then
the poller's ``webhook.fan_out`` span, its child (the batch's SQL inside), which rings
the deliveries; the trace context travels in each dramatiq message, so the worker's
spans are its children: ``webhook.claim`` (the batch's claim transaction) and, per
delivery, ``webhook.deliver`` (its ``POST`` and the SQL that recorded it inside),
carrying the event, delivery and endpoint ids and the attempt number. A statement that
records many deliveries at once appears in each of their traces, with
``db.operation.batch.size`` saying how many it served.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import dramatiq
from sqlalchemy.engine import Engine

from worker.errors import ConfigurationError
from worker.settings import Settings


class TraceSpan(Protocol):
    """A span the engine started and ends itself."""

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute."""


class RequestSpan(Protocol):
    """The span of one outgoing request."""

    def set_response(self, status_code: int | None) -> None:
        """What came back (``None``: no response)."""


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

    def current(self) -> Any:
        """The current trace context, to start spans in later (here: ``None``)."""
        return None

    def start(self, name: str, parent: Any) -> TraceSpan | None:
        """A span in ``parent`` (a :meth:`current` value) that the caller ends with
        :meth:`end` (here: ``None``)."""
        return None

    def end(self, span: TraceSpan | None, error: BaseException | None = None) -> None:
        """End a span from :meth:`start`, failed if ``error`` is given."""

    @contextmanager
    def activate(self, span: TraceSpan | None) -> Iterator[None]:
        """Make ``span`` current within the block (without ending it)."""
        yield

    @contextmanager
    def request(self, method: str, url: str) -> Iterator[RequestSpan]:
        """A CLIENT span around one outgoing request."""
        yield _NO_REQUEST

    @contextmanager
    def on_behalf_of(self, spans: Sequence[TraceSpan]) -> Iterator[None]:
        """Within the block, every SQL statement is traced in each of ``spans`` (one
        statement recording many deliveries)."""
        yield

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


class _NoRequest:
    def set_response(self, status_code: int | None) -> None:
        return


_NO_REQUEST = _NoRequest()

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
