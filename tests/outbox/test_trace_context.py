"""``publish()`` stores the producer's W3C trace context with the event (or none)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from sqlalchemy import select

from outbox import Event, publish, tracecontext
from outbox.database import make_session_factory
from tests.support.services import engine_for

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def sessions(migrated: str) -> Iterator[Any]:
    engine = engine_for(migrated)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def tracer() -> Iterator[Tracer]:
    """A producer's own tracer (its provider is not the global one)."""
    provider = TracerProvider()
    yield provider.get_tracer("producer")
    provider.shutdown()


def stored(sessions: Any, **kwargs: Any) -> dict[str, str] | None:
    """Publish with ``kwargs`` and read back the stored trace context."""
    with sessions() as session, session.begin():
        event_id = publish(session, workspace_id="ws_1", type="run.succeeded", data={}, **kwargs).id
    with sessions() as session:
        value = session.scalar(select(Event.trace_context).where(Event.id == event_id))
    return None if value is None else dict(value)


def test_the_current_span_is_stored(sessions: Any, tracer: Tracer) -> None:
    """Inside a producer's span, the event keeps that span's traceparent (trace id,
    span id, sampled flag), on SQLite and PostgreSQL alike."""
    with tracer.start_as_current_span("checkout") as span:
        with sessions() as session, session.begin():
            event = publish(session, workspace_id="ws_1", type="run.succeeded", data={})
        context = span.get_span_context()
    assert context.trace_flags.sampled
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    assert event.trace_context == {"traceparent": expected}
    with sessions() as session:
        assert session.get(Event, event.id).trace_context == {"traceparent": expected}


def test_no_span_no_context(sessions: Any) -> None:
    """A producer that is not tracing stores NULL."""
    assert stored(sessions) is None


def test_an_explicit_carrier_wins_and_keeps_tracestate(sessions: Any, tracer: Tracer) -> None:
    """A carrier passed in is stored instead of the current span (header-cased keys
    too), with its tracestate; ``{}`` opts out even inside a span."""
    carrier = {"Traceparent": PARENT, "TraceState": "congo=t61rcWkgMzE", "baggage": "k=v"}
    with tracer.start_as_current_span("checkout"):
        assert stored(sessions, trace_context=carrier) == {
            "traceparent": PARENT,
            "tracestate": "congo=t61rcWkgMzE",
        }
        assert stored(sessions, trace_context={}) is None


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",  # not lowercase
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n-x",
    ],
)
def test_an_invalid_traceparent_is_dropped_not_refused(sessions: Any, traceparent: str) -> None:
    """W3C: an invalid traceparent is ignored; the event is published without one."""
    assert stored(sessions, trace_context={"traceparent": traceparent, "tracestate": "a=b"}) is None


def test_an_oversized_or_binary_tracestate_is_dropped(sessions: Any) -> None:
    """The traceparent is kept; a tracestate over 512 characters or with control
    characters is not."""
    for state in ("a=" + "b" * 600, "a=b\x00c"):
        carrier = {"traceparent": PARENT, "tracestate": state}
        assert stored(sessions, trace_context=carrier) == {"traceparent": PARENT}


def test_without_opentelemetry_publish_stores_none(
    sessions: Any, tracer: Tracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenTelemetry not installed: publish works and stores no context (the failed
    import is tried once, then remembered)."""
    monkeypatch.setitem(sys.modules, "opentelemetry.trace.propagation.tracecontext", None)
    tracecontext._injector.cache_clear()
    try:
        with tracer.start_as_current_span("checkout"):
            assert stored(sessions) is None
            assert stored(sessions) is None
        assert tracecontext._injector.cache_info().misses == 1
    finally:
        tracecontext._injector.cache_clear()
