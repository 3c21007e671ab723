"""OpenTelemetry tracing (the ``[otel]`` extra), imported only when it is switched on.

The OTLP exporter reads its own ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers,
protocol) when it is built, as every OpenTelemetry SDK does.

The SQL and ``POST`` spans are ours, not the contrib instrumentations: the SQLAlchemy
one is a process-wide singleton that patches ``create_engine`` (this project passes a
tracer to each runtime instead), and the HTTP client ones add a ``traceparent`` header
to every request, while receivers must get exactly the headers of the wire format. Both
are a few lines: SQLAlchemy's cursor events, and a span the engine opens around each
``POST``. SQL spans carry the statement text, never its parameters.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import dramatiq
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import event
from sqlalchemy.engine import Engine

from worker.telemetry.tracing import RequestSpan, TraceSpan, Tracing

CONTEXT_OPTION = "trace_context"
"""The dramatiq message option that carries the W3C trace context."""

_ON_BEHALF_OF: contextvars.ContextVar[Sequence[Span] | None] = contextvars.ContextVar(
    "catentio_sql_on_behalf_of", default=None
)
"""The spans a statement run now is traced in (one recording many deliveries)."""

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

    def current(self) -> Any:
        """The current OpenTelemetry context."""
        return context.get_current()

    def start(self, name: str, parent: Any) -> TraceSpan:
        """A span in ``parent``, current nowhere until :meth:`activate`."""
        return self.tracer.start_span(name, context=parent, kind=SpanKind.CONSUMER)

    def end(self, span: TraceSpan | None, error: BaseException | None = None) -> None:
        """End ``span``; failed, with the exception recorded, if ``error`` is given."""
        if not isinstance(span, Span):
            return
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    @contextmanager
    def activate(self, span: TraceSpan | None) -> Iterator[None]:
        """``span`` current within the block, not ended by it."""
        if not isinstance(span, Span):
            yield
            return
        with trace.use_span(span, end_on_exit=False):
            yield

    @contextmanager
    def request(self, method: str, url: str) -> Iterator[RequestSpan]:
        """A CLIENT span for one request (until its response has been read)."""
        parts = urlsplit(url)
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "server.address": parts.hostname or "",
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
            "url.scheme": parts.scheme,
        }
        with self.tracer.start_as_current_span(
            method, kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            yield _Request(span)

    @contextmanager
    def on_behalf_of(self, spans: Sequence[TraceSpan]) -> Iterator[None]:
        """Each statement of the block gets a span in every one of ``spans``."""
        token = _ON_BEHALF_OF.set([s for s in spans if isinstance(s, Span)] or None)
        try:
            yield
        finally:
            _ON_BEHALF_OF.reset(token)

    def middleware(self) -> dramatiq.Middleware:
        """Carries the trace context from ``enqueue`` to ``webhook.deliver``."""
        return _TraceContext()

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
        attributes: dict[str, Any] = {"db.system.name": self._system, "db.query.text": statement}
        parents = _ON_BEHALF_OF.get()
        if parents is None:
            spans = [
                self._tracer.start_span(operation, kind=SpanKind.CLIENT, attributes=attributes)
            ]
        else:
            attributes["db.operation.batch.size"] = len(parents)
            spans = [
                self._tracer.start_span(
                    operation,
                    context=trace.set_span_in_context(parent),
                    kind=SpanKind.CLIENT,
                    attributes=attributes,
                )
                for parent in parents
            ]
        conn.info.setdefault("catentio_spans", []).append(spans)

    def _after(self, conn: Any, *_args: Any) -> None:
        stack = conn.info.get("catentio_spans")
        if stack:
            for span in stack.pop():
                span.end()

    def _error(self, exception_context: Any) -> None:
        conn = exception_context.connection
        stack = conn.info.get("catentio_spans") if conn is not None else None
        if stack:
            for span in stack.pop():
                span.record_exception(exception_context.original_exception)
                span.set_status(Status(StatusCode.ERROR))
                span.end()


class _Request:
    def __init__(self, span: Span) -> None:
        self._span = span

    def set_response(self, status_code: int | None) -> None:
        if status_code is None:
            self._span.set_status(Status(StatusCode.ERROR, "no response"))
            return
        self._span.set_attribute("http.response.status_code", status_code)
        if status_code >= 500:
            self._span.set_status(Status(StatusCode.ERROR))


class _TraceContext(dramatiq.Middleware):
    """``before_enqueue``: the current trace context into the message's options;
    ``before_process_message``: that context current while the message is processed
    (the engine starts its spans in it); ``after_process_message``: detached again."""

    def __init__(self) -> None:
        self._active: dict[str, object] = {}

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int) -> None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if carrier:
            message.options[CONTEXT_OPTION] = carrier

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        parent = propagate.extract(message.options.get(CONTEXT_OPTION) or {})
        self._active[message.message_id] = context.attach(parent)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        token = self._active.pop(message.message_id, None)
        if token is not None:
            context.detach(token)  # type: ignore[arg-type]

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self.after_process_message(broker, message)
