"""OpenTelemetry tracing (the ``[otel]`` extra), imported only when it is switched on.

The OTLP exporter reads its own ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers,
protocol) when it is built, as every OpenTelemetry SDK does.

The SQL and ``POST`` spans are ours, not the contrib instrumentations: the SQLAlchemy
one is a process-wide singleton that patches ``create_engine`` (this project passes a
tracer to each runtime instead), and the httpx one adds a ``traceparent`` header to
every request, while receivers must get exactly the headers of the wire format. Both
are a few lines on SQLAlchemy's cursor events and httpx's transport interface. SQL
spans carry the statement text, never its parameters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dramatiq
import httpx
import structlog
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import event
from sqlalchemy.engine import Engine

from worker.telemetry.tracing import Tracing

CONTEXT_OPTION = "trace_context"
"""The dramatiq message option that carries the W3C trace context."""

LOG_ATTRIBUTES = {
    "delivery_id": "catentio.delivery.id",
    "event_id": "catentio.event.id",
    "endpoint_id": "catentio.endpoint.id",
    "attempt": "catentio.attempt",
}
"""Log context bound while delivering → span attributes of ``webhook.deliver``."""

MAX_PRODUCER_LINKS = 128
"""Links a fan-out span keeps to its batch's producers (the SDK's default link limit)."""

_W3C = TraceContextTextMapPropagator()


class OTelTracing(Tracing):
    """Spans through an OpenTelemetry ``TracerProvider`` of this process."""

    enabled = True

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("catentio-webhooks")

    @classmethod
    def exporting_otlp(cls, *, process: str) -> OTelTracing:
        """Spans batched to the OTLP/HTTP endpoint of ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls.with_processor(BatchSpanProcessor(OTLPSpanExporter()), process=process)

    @classmethod
    def with_processor(cls, processor: SpanProcessor, *, process: str) -> OTelTracing:
        """Spans handed to ``processor`` (tests pass an in-memory exporter's)."""
        resource = Resource.create(
            {"service.name": "catentio-webhooks", "catentio.process": process}
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(processor)
        return cls(provider)

    @contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Any]:
        """A span around the block, current within it."""
        with self.tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span

    @contextmanager
    def continuing(
        self, name: str, carriers: Sequence[Mapping[str, str] | None], **attributes: Any
    ) -> Iterator[Any]:
        """A span that continues the traces its events were published in.

        When every event of the batch carries the same producer context (one event, or
        one producer transaction that published several), the span is that producer
        span's child: one trace from the publish to the POST. A batch that mixes
        producers (or traced and untraced events) cannot be the child of all of them:
        the span starts a trace of its own with a link to each producer's span, as the
        OpenTelemetry messaging conventions do for a batch receive; its deliveries are
        its children. ``catentio.producer.traces`` says how many it continues."""
        contexts: list[SpanContext] = []
        untraced = False
        for carrier in carriers:
            span_context = _span_context_of(carrier)
            if span_context is None:
                untraced = True
            elif span_context not in contexts:
                contexts.append(span_context)
        attributes["catentio.producer.traces"] = len(contexts)
        if len(contexts) == 1 and not untraced:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(contexts[0]))
            with self.tracer.start_as_current_span(
                name, context=parent, attributes=attributes
            ) as span:
                yield span
            return
        links = [Link(c) for c in contexts[:MAX_PRODUCER_LINKS]]
        with self.tracer.start_as_current_span(
            name, context=context.Context(), links=links, attributes=attributes
        ) as span:
            yield span

    @contextmanager
    def request_span(self, method: str, headers: Mapping[str, str]) -> Iterator[Any]:
        """A SERVER span for one API request, child of its ``traceparent`` header."""
        parent = _W3C.extract(dict(headers))
        with self.tracer.start_as_current_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield _RequestSpan(span, method)

    def instrument_engine(self, engine: Engine) -> None:
        """SQL spans for every statement ``engine`` runs."""
        _SQLSpans(self.tracer, engine.dialect.name).listen(engine)

    def wrap_transport(self, transport: httpx.BaseTransport) -> httpx.BaseTransport:
        """A ``POST`` span around each request (until its response headers)."""
        return _TracingTransport(transport, self.tracer)

    def middleware(self) -> dramatiq.Middleware:
        """Carries the trace context from ``enqueue`` to ``webhook.deliver``."""
        return _TraceContext(self.tracer)

    def shutdown(self) -> None:
        """Export what is buffered, then stop."""
        self.provider.shutdown()


def _span_context_of(carrier: Mapping[str, str] | None) -> SpanContext | None:
    if not carrier:
        return None
    span_context = trace.get_current_span(_W3C.extract(dict(carrier))).get_span_context()
    return span_context if span_context.is_valid else None


class _RequestSpan:
    """The API request's span: named ``METHOD route`` once the route is known."""

    def __init__(self, span: Span, method: str) -> None:
        self._span = span
        self._method = method

    def set_attribute(self, key: str, value: Any) -> None:
        self._span.set_attribute(key, value)

    def finish(self, route: str, status: int) -> None:
        self._span.update_name(f"{self._method} {route}")
        self._span.set_attribute("http.route", route)
        self._span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self._span.set_status(Status(StatusCode.ERROR))


class _SQLSpans:
    """One CLIENT span per statement, from ``before_cursor_execute`` to its end."""

    def __init__(self, tracer: trace.Tracer, system: str) -> None:
        self._tracer = tracer
        self._system = system

    def listen(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "handle_error", self._error)

    def _before(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        span = self._tracer.start_span(
            operation,
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": self._system, "db.query.text": statement},
        )
        conn.info.setdefault("catentio_spans", []).append(span)

    def _after(self, conn: Any, *_args: Any) -> None:
        spans = conn.info.get("catentio_spans")
        if spans:
            spans.pop().end()

    def _error(self, exception_context: Any) -> None:
        conn = exception_context.connection
        spans = conn.info.get("catentio_spans") if conn is not None else None
        if spans:
            span = spans.pop()
            span.record_exception(exception_context.original_exception)
            span.set_status(Status(StatusCode.ERROR))
            span.end()


class _TracingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, tracer: trace.Tracer) -> None:
        self._inner = inner
        self._tracer = tracer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attributes: dict[str, Any] = {
            "http.request.method": request.method,
            "server.address": request.url.host,
            "server.port": request.url.port or (443 if request.url.scheme == "https" else 80),
            "url.scheme": request.url.scheme,
        }
        with self._tracer.start_as_current_span(
            request.method, kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            response = self._inner.handle_request(request)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    def close(self) -> None:
        self._inner.close()


class _TraceContext(dramatiq.Middleware):
    """``before_enqueue``: the current trace context into the message's options;
    ``before_process_message``: a ``webhook.deliver`` span, child of that context,
    current until ``after_process_message``, which adds the ids the delivery bound."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._active: dict[str, tuple[Span, object]] = {}
        self._lock = threading.Lock()

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int) -> None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if carrier:
            message.options[CONTEXT_OPTION] = carrier

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        parent = propagate.extract(message.options.get(CONTEXT_OPTION) or {})
        span = self._tracer.start_span(
            "webhook.deliver",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "dramatiq",
                "messaging.message.id": message.message_id,
                "catentio.delivery.id": str(message.args[0]) if message.args else "",
            },
        )
        token = context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._active[message.message_id] = (span, token)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._lock:
            active = self._active.pop(message.message_id, None)
        if active is None:
            return
        span, token = active
        bound = structlog.contextvars.get_contextvars()
        for key, attribute in LOG_ATTRIBUTES.items():
            if bound.get(key) is not None:
                span.set_attribute(attribute, bound[key])
        if exception is not None:
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
        span.end()
        context.detach(token)  # type: ignore[arg-type]

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self.after_process_message(broker, message)
