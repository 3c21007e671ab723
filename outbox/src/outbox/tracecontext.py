"""The W3C trace context stored with an event, so the poller and the workers continue
the producer's trace (``events.trace_context``).

``catentio-outbox`` does not depend on OpenTelemetry. :func:`current` imports its API
when ``publish()`` first asks (and remembers whether it could): a producer that traces
has it installed, and its current span is what the event belongs to; a producer that
does not trace pays one failed import, once. The W3C propagator is used directly,
whatever the producer's own ``OTEL_PROPAGATORS`` say, because the stored value must be
one format that every reader understands.

A producer that traces with something else, or forwards a context it received, passes
the carrier itself (``publish(..., trace_context={"traceparent": ...})``). Values that
are not a valid ``traceparent`` are dropped, not refused: the W3C recommendation says
an invalid header is ignored, and tracing must never make a publish fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

MAX_TRACESTATE_LENGTH = 512
"""Longest ``tracestate`` kept (the W3C recommendation's minimum that must be carried);
a longer one is dropped and the ``traceparent`` alone is stored."""

# version (not ff) - trace id (not all zeros) - parent span id (not all zeros) - flags
_TRACEPARENT = re.compile(
    r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}"
)
_TRACESTATE = re.compile(r"[\x20-\x7e]*")

Inject = Callable[[dict[str, str]], None]


def normalized(carrier: Mapping[str, object] | None) -> dict[str, str] | None:
    """The ``traceparent`` (and ``tracestate``) of ``carrier``, or ``None`` when there is
    no valid ``traceparent``. Keys are matched case-insensitively (HTTP headers)."""
    if not carrier:
        return None
    lowered = {str(k).lower(): v for k, v in carrier.items()}
    parent = lowered.get(TRACEPARENT)
    if not isinstance(parent, str) or not _TRACEPARENT.fullmatch(parent.strip()):
        return None
    context = {TRACEPARENT: parent.strip()}
    state = lowered.get(TRACESTATE)
    if (
        isinstance(state, str)
        and state.strip()
        and len(state) <= MAX_TRACESTATE_LENGTH
        and _TRACESTATE.fullmatch(state)
    ):
        context[TRACESTATE] = state.strip()
    return context


@cache
def _injector() -> Inject | None:
    """OpenTelemetry's W3C ``inject``, or ``None`` when the API is not installed."""
    try:
        from opentelemetry.trace.propagation.tracecontext import (
            TraceContextTextMapPropagator,
        )
    except ImportError:
        return None
    propagator = TraceContextTextMapPropagator()

    def inject(carrier: dict[str, str]) -> None:
        propagator.inject(carrier)

    return inject


def current() -> dict[str, str] | None:
    """The W3C trace context of the caller's current OpenTelemetry span, or ``None``
    (OpenTelemetry not installed, or no valid span is current)."""
    inject = _injector()
    if inject is None:
        return None
    carrier: dict[str, str] = {}
    inject(carrier)
    return normalized(carrier)
