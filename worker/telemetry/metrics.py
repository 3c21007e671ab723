"""The metrics interface the delivery path calls, and its Prometheus implementation.

The engine, the poller and the actor call :class:`Metrics` at a few points (an attempt
finished, a delivery was held, the poller fanned out a batch, …) and know nothing of
Prometheus. :class:`Metrics` itself does nothing, so a runtime without metrics pays a
method call per event; :class:`PrometheusMetrics` counts into a registry of its own.

Names follow the Prometheus conventions: base units (seconds), ``_total`` on counters,
and labels only from small fixed sets, so the number of series never grows with the
number of endpoints or workspaces. ``CATENTIO_METRICS_ENDPOINT_LABELS=true`` adds an
``endpoint`` label to the attempt and hold counters, for small installations only.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

PREFIX = "catentio_webhooks"
"""Every metric name starts with this."""

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
"""Attempt durations, up to past the default 15 s deadline."""

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
"""Commit → first attempt: from a healthy pipeline's tens of milliseconds to minutes."""

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
"""Events per non-empty poll batch (the default batch size is 200)."""

OUTCOMES = ("succeeded", "retry", "failed", "exhausted")
"""An attempt's outcome label: the ``Attempt.outcome`` values."""

HOLD_REASONS = ("paused", "circuit", "concurrency", "rate")
"""Why a delivery was held without spending an attempt."""

OWN_FAILURE_KINDS = ("database", "broker")
"""Our own failures: they never spend a receiver's attempts."""


def status_class(status_code: int | None) -> str:
    """``2xx`` … ``5xx`` for a response, ``none`` when no response came back (timeout,
    connect error, blocked address)."""
    if status_code is None or not 100 <= status_code <= 599:
        return "none"
    return f"{status_code // 100}xx"


class Metrics:
    """The calls the delivery path makes. This base class records nothing; see
    :class:`PrometheusMetrics`. Implementations must be thread-safe and never raise."""

    def attempt_finished(
        self,
        outcome: str,
        status_class: str,
        duration_s: float,
        *,
        endpoint_id: str | None = None,
    ) -> None:
        """An HTTP attempt ended (``outcome`` in :data:`OUTCOMES`)."""

    def first_attempt_latency(self, seconds: float) -> None:
        """A delivery's first attempt started ``seconds`` after its event was published."""

    def delivery_held(self, reason: str, *, endpoint_id: str | None = None) -> None:
        """A claimed delivery was held back (``reason`` in :data:`HOLD_REASONS`)."""

    def own_failure(self, kind: str) -> None:
        """Our database or broker failed an operation (``kind`` in
        :data:`OWN_FAILURE_KINDS`)."""

    def poll_batch(self, size: int) -> None:
        """The poller claimed and fanned out a non-empty batch of ``size`` events."""

    def swept(self, count: int) -> None:
        """The sweeper re-rang ``count`` deliveries whose message went unanswered."""


NO_METRICS = Metrics()
"""The default: records nothing."""


class PrometheusMetrics(Metrics):
    """:class:`Metrics` counted into ``registry`` (prometheus-client)."""

    def __init__(self, registry: CollectorRegistry, *, endpoint_labels: bool = False) -> None:
        self.registry = registry
        self._endpoint_labels = endpoint_labels
        extra = ("endpoint",) if endpoint_labels else ()
        self._attempts = Counter(
            f"{PREFIX}_attempts",
            "HTTP delivery attempts by outcome and response status class.",
            ("outcome", "status_class", *extra),
            registry=registry,
        )
        self._attempt_seconds = Histogram(
            f"{PREFIX}_attempt_duration_seconds",
            "Duration of one HTTP attempt, connect to last byte read.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._first_attempt = Histogram(
            f"{PREFIX}_first_attempt_latency_seconds",
            "From an event's publication to its delivery's first attempt.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._held = Counter(
            f"{PREFIX}_deliveries_held",
            "Deliveries held back without spending an attempt, by reason.",
            ("reason", *extra),
            registry=registry,
        )
        self._own_failures = Counter(
            f"{PREFIX}_own_failures",
            "Operations that failed on our side (database, broker); no attempt is spent.",
            ("kind",),
            registry=registry,
        )
        self._poll_batch = Histogram(
            f"{PREFIX}_poll_batch_events",
            "Events per non-empty poll batch.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._swept = Counter(
            f"{PREFIX}_swept_deliveries",
            "Deliveries the sweeper rang again because nobody answered their message.",
            registry=registry,
        )
        # Every label value of the fixed sets exists from the start, at zero, so a rate()
        # over it is defined before the first failure and alerts need no `or vector(0)`.
        if not endpoint_labels:
            for outcome in OUTCOMES:
                for klass in ("2xx", "3xx", "4xx", "5xx", "none"):
                    self._attempts.labels(outcome, klass)
            for reason in HOLD_REASONS:
                self._held.labels(reason)
        for kind in OWN_FAILURE_KINDS:
            self._own_failures.labels(kind)

    def attempt_finished(
        self,
        outcome: str,
        status_class: str,
        duration_s: float,
        *,
        endpoint_id: str | None = None,
    ) -> None:
        """Count the attempt and observe its duration."""
        if self._endpoint_labels:
            self._attempts.labels(outcome, status_class, endpoint_id or "").inc()
        else:
            self._attempts.labels(outcome, status_class).inc()
        self._attempt_seconds.observe(duration_s)

    def first_attempt_latency(self, seconds: float) -> None:
        """Observe publication → first attempt."""
        self._first_attempt.observe(max(0.0, seconds))

    def delivery_held(self, reason: str, *, endpoint_id: str | None = None) -> None:
        """Count a hold."""
        if self._endpoint_labels:
            self._held.labels(reason, endpoint_id or "").inc()
        else:
            self._held.labels(reason).inc()

    def own_failure(self, kind: str) -> None:
        """Count one of our own failures."""
        self._own_failures.labels(kind).inc()

    def poll_batch(self, size: int) -> None:
        """Observe a batch's size."""
        self._poll_batch.observe(size)

    def swept(self, count: int) -> None:
        """Count re-rung deliveries."""
        self._swept.inc(count)
