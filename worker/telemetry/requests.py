"""Per-request metrics of the HTTP API process.

``catentio_webhooks_api_requests_total{method,route,status_class}`` and
``catentio_webhooks_api_request_duration_seconds{method,route}``. ``route`` is the route
template (``/v1/webhooks/{endpoint_id}``), never the path a client sent, so ids do not
become series; a path that matches no route is ``unmatched``, and a method outside the
HTTP standard ones is ``other``: a scanner probing random URLs adds no series.

:class:`RequestMetrics` records nothing; :class:`PrometheusRequestMetrics` counts into a
process's registry (``Telemetry.request_metrics()``, only in processes that serve the
API, so the other processes do not list families they never fill).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from worker.telemetry.metrics import PREFIX, status_class

UNMATCHED = "unmatched"
"""The ``route`` of a request that matched no route (a 404 for an unknown path)."""

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods kept as their own label value; any other is ``other``."""

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""API request durations: most answer in milliseconds, bulk work in the background."""


class RequestMetrics:
    """What the API's middleware calls once per request. Records nothing."""

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """A request was answered with ``status`` after ``seconds``."""


NO_REQUEST_METRICS = RequestMetrics()
"""The default: records nothing."""


class PrometheusRequestMetrics(RequestMetrics):
    """The two families, in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            f"{PREFIX}_api_requests",
            "HTTP API requests answered, by method, route template and status class.",
            ("method", "route", "status_class"),
            registry=registry,
        )
        self._seconds = Histogram(
            f"{PREFIX}_api_request_duration_seconds",
            "HTTP API request duration, from reaching the app to the last byte sent.",
            ("method", "route"),
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count the request and observe its duration."""
        method = method if method in METHODS else "other"
        klass = status_class(status)
        self._requests.labels(method, route, klass).inc()
        self._seconds.labels(method, route).observe(max(0.0, seconds))
