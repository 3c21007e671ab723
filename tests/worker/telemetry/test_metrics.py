"""The Prometheus metrics: names, labels, and values the delivery path puts there."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker.telemetry.metrics import NO_METRICS, PrometheusMetrics, status_class


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_status_classes() -> None:
    """A response's status code becomes its class; no response is `none`."""
    assert [status_class(c) for c in (200, 204, 302, 410, 503, None, 42)] == [
        "2xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "none",
        "none",
    ]


def test_counts_land_under_their_conventional_names() -> None:
    """Attempts, holds, own failures, batches and sweeps are counted with bounded labels;
    every fixed label value exists at zero from the start."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    before = samples(registry)
    assert (
        before[
            ("catentio_webhooks_attempts_total", (("outcome", "failed"), ("status_class", "5xx")))
        ]
        == 0
    )
    assert before[("catentio_webhooks_own_failures_total", (("kind", "broker"),))] == 0
    metrics.attempt_finished("succeeded", "2xx", 0.02, endpoint_id="ep_1")
    metrics.attempt_finished("retry", "5xx", 0.3)
    metrics.attempt_finished("retry", "5xx", 0.4)
    metrics.delivery_held("concurrency")
    metrics.own_failure("database")
    metrics.poll_batch(7)
    metrics.first_attempt_latency(0.2)
    metrics.swept(3)
    got = samples(registry)
    attempts = "catentio_webhooks_attempts_total"
    assert got[(attempts, (("outcome", "succeeded"), ("status_class", "2xx")))] == 1
    assert got[(attempts, (("outcome", "retry"), ("status_class", "5xx")))] == 2
    assert got[("catentio_webhooks_attempt_duration_seconds_count", ())] == 3
    assert got[("catentio_webhooks_attempt_duration_seconds_bucket", (("le", "0.25"),))] == 1
    assert got[("catentio_webhooks_deliveries_held_total", (("reason", "concurrency"),))] == 1
    assert got[("catentio_webhooks_deliveries_held_total", (("reason", "rate"),))] == 0
    assert got[("catentio_webhooks_own_failures_total", (("kind", "database"),))] == 1
    assert got[("catentio_webhooks_poll_batch_events_sum", ())] == 7
    assert got[("catentio_webhooks_first_attempt_latency_seconds_count", ())] == 1
    assert got[("catentio_webhooks_swept_deliveries_total", ())] == 3
    assert not any("endpoint" in dict(labels) for _, labels in got)


def test_endpoint_labels_only_when_asked() -> None:
    """CATENTIO_METRICS_ENDPOINT_LABELS adds an `endpoint` label to attempts and holds."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry, endpoint_labels=True)
    metrics.attempt_finished("succeeded", "2xx", 0.01, endpoint_id="ep_1")
    metrics.delivery_held("rate", endpoint_id="ep_2")
    got = samples(registry)
    key = (("endpoint", "ep_1"), ("outcome", "succeeded"), ("status_class", "2xx"))
    assert got[("catentio_webhooks_attempts_total", key)] == 1
    held = (("endpoint", "ep_2"), ("reason", "rate"))
    assert got[("catentio_webhooks_deliveries_held_total", held)] == 1


def test_the_default_records_nothing_and_never_raises() -> None:
    """The no-op default accepts every call."""
    NO_METRICS.attempt_finished("succeeded", "2xx", 0.1, endpoint_id="ep")
    NO_METRICS.first_attempt_latency(1.0)
    NO_METRICS.delivery_held("paused")
    NO_METRICS.own_failure("broker")
    NO_METRICS.poll_batch(1)
    NO_METRICS.swept(0)
