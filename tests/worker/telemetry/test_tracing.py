"""Traces with OpenTelemetry's in-memory exporter: one trace from fan-out to the POST."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from outbox import publish
from tests.support.waiting import wait_until
from worker.errors import ConfigurationError
from worker.settings import Settings
from worker.telemetry.otel import OTelTracing
from worker.telemetry.tracing import NO_TRACING, open_tracing

ROOT = Path(__file__).resolve().parents[3]


def traced_delivery(
    runtime: Any,
    exporter: InMemorySpanExporter,
    receiver: Any,
    count: int,
    *,
    producer: Tracer | None = None,
    producer_spans: int = 1,
) -> list[ReadableSpan]:
    """Publish ``count`` events (inside ``producer_spans`` spans of the ``producer``
    tracer, when given, the events shared out between them), fan them out in one batch,
    and wait until every delivery's span ended."""
    for span_index in range(producer_spans):
        with ExitStack() as stack:
            if producer is not None:
                stack.enter_context(producer.start_as_current_span(f"checkout {span_index}"))
            with runtime.sessions() as session, session.begin():
                for i in range(span_index, count, producer_spans):
                    publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i})
    runtime.poller().poll_once()
    runtime.start_worker(2)
    assert receiver.wait_for(count, path="/hook", timeout=30)

    def delivered() -> bool:
        spans = exporter.get_finished_spans()
        return sum(s.name == "webhook.deliver" for s in spans) >= count

    assert wait_until(delivered, timeout=30)
    return list(exporter.get_finished_spans())


def check_one_trace(spans: list[ReadableSpan], count: int, endpoint_id: str) -> None:
    (fan_out,) = [s for s in spans if s.name == "webhook.fan_out"]
    assert fan_out.attributes is not None and fan_out.attributes["catentio.events"] == count
    assert fan_out.context is not None
    trace_id = fan_out.context.trace_id
    delivers = [s for s in spans if s.name == "webhook.deliver"]
    assert len(delivers) == count
    for deliver in delivers:
        assert deliver.context is not None and deliver.parent is not None
        assert deliver.context.trace_id == trace_id  # the context crossed the broker
        assert deliver.parent.span_id == fan_out.context.span_id
        attributes = dict(deliver.attributes or {})
        assert attributes["catentio.delivery.id"].startswith("dlv_")
        assert attributes["catentio.event.id"].startswith("evt_")
        assert attributes["catentio.event.id"] in fan_out.attributes["catentio.event.ids"]
        assert attributes["catentio.endpoint.id"] == endpoint_id
        assert attributes["catentio.attempt"] == 1
        children = [
            s for s in spans if s.parent is not None and s.parent.span_id == deliver.context.span_id
        ]
        posts = [s for s in children if s.name == "POST"]
        assert len(posts) == 1
        assert dict(posts[0].attributes or {})["http.response.status_code"] == 200
        sql = {s.name for s in children} - {"POST"}
        assert {"SELECT", "UPDATE"} <= sql  # the claim and the record, inside
        for s in children:
            if s.name != "POST":
                assert "whsec_" not in str(s.attributes)
    fan_out_sql = [s for s in spans if s.parent and s.parent.span_id == fan_out.context.span_id]
    assert any(s.name == "INSERT" for s in fan_out_sql)


def test_one_trace_from_fan_out_to_the_post_embedded(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any, receiver: Any
) -> None:
    """Embedded: fan-out span → a deliver span per delivery (ids as attributes) → its POST
    and SQL spans; receivers get no traceparent header."""
    exporter = InMemorySpanExporter()
    tracing = OTelTracing.with_processor(SimpleSpanProcessor(exporter), process="run")
    runtime = make_runtime(sqlite_url, tracing=tracing)
    endpoint = add_endpoint(runtime, receiver=receiver, path="/hook").endpoint
    spans = traced_delivery(runtime, exporter, receiver, 3)
    check_one_trace(spans, 3, endpoint.id)
    assert all("traceparent" not in r.headers for r in receiver.received("/hook"))


def test_trace_context_travels_through_redis(
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Any,
) -> None:
    """On PostgreSQL + Redis the context rides in the dramatiq message's options."""
    exporter = InMemorySpanExporter()
    tracing = OTelTracing.with_processor(SimpleSpanProcessor(exporter), process="worker")
    runtime = make_runtime(
        postgres_url, redis_url=redis_server, redis_namespace=redis_namespace, tracing=tracing
    )
    endpoint = add_endpoint(runtime, receiver=receiver, path="/hook").endpoint
    check_one_trace(traced_delivery(runtime, exporter, receiver, 2), 2, endpoint.id)


@pytest.fixture
def producer_and_exporter() -> Iterator[tuple[Tracer, InMemorySpanExporter]]:
    """A producer process's own tracer, exporting to an in-memory exporter of its own."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("producer"), exporter
    provider.shutdown()


def check_continues_the_producer(
    spans: list[ReadableSpan], producer_spans: list[ReadableSpan], count: int
) -> None:
    """The fan-out is the producer span's child, in its trace, down to every POST."""
    (checkout,) = producer_spans
    assert checkout.context is not None
    (fan_out,) = [s for s in spans if s.name == "webhook.fan_out"]
    assert fan_out.parent is not None and fan_out.context is not None
    assert fan_out.parent.span_id == checkout.context.span_id
    assert fan_out.context.trace_id == checkout.context.trace_id
    assert dict(fan_out.attributes or {})["catentio.producer.traces"] == 1
    assert not fan_out.links
    in_trace = [s for s in spans if s.context and s.context.trace_id == checkout.context.trace_id]
    assert sum(s.name == "webhook.deliver" for s in in_trace) == count
    assert sum(s.name == "POST" for s in in_trace) == count


def test_the_fan_out_continues_the_producers_trace_embedded(
    sqlite_url: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Any,
    producer_and_exporter: tuple[Tracer, InMemorySpanExporter],
) -> None:
    """publish() inside a producer's span: one trace from that span through the fan-out
    and each delivery to its POST."""
    producer, produced = producer_and_exporter
    exporter = InMemorySpanExporter()
    tracing = OTelTracing.with_processor(SimpleSpanProcessor(exporter), process="run")
    runtime = make_runtime(sqlite_url, tracing=tracing)
    endpoint = add_endpoint(runtime, receiver=receiver, path="/hook").endpoint
    spans = traced_delivery(runtime, exporter, receiver, 3, producer=producer)
    check_one_trace(spans, 3, endpoint.id)
    check_continues_the_producer(spans, list(produced.get_finished_spans()), 3)


def test_the_fan_out_continues_the_producers_trace_through_redis(
    postgres_url: str,
    redis_server: str,
    redis_namespace: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Any,
    producer_and_exporter: tuple[Tracer, InMemorySpanExporter],
) -> None:
    """On PostgreSQL (the context stored as JSONB) and Redis: the same single trace."""
    producer, produced = producer_and_exporter
    exporter = InMemorySpanExporter()
    tracing = OTelTracing.with_processor(SimpleSpanProcessor(exporter), process="worker")
    runtime = make_runtime(
        postgres_url, redis_url=redis_server, redis_namespace=redis_namespace, tracing=tracing
    )
    endpoint = add_endpoint(runtime, receiver=receiver, path="/hook").endpoint
    spans = traced_delivery(runtime, exporter, receiver, 2, producer=producer)
    check_one_trace(spans, 2, endpoint.id)
    check_continues_the_producer(spans, list(produced.get_finished_spans()), 2)


def test_a_batch_of_several_producers_links_to_each(
    database_url: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Any,
    producer_and_exporter: tuple[Tracer, InMemorySpanExporter],
) -> None:
    """Events of two producer spans in one batch: the fan-out cannot be the child of
    both, so it starts its own trace with a link to each; the deliveries follow it."""
    producer, produced = producer_and_exporter
    exporter = InMemorySpanExporter()
    tracing = OTelTracing.with_processor(SimpleSpanProcessor(exporter), process="run")
    runtime = make_runtime(database_url, tracing=tracing)
    endpoint = add_endpoint(runtime, receiver=receiver, path="/hook").endpoint
    spans = traced_delivery(runtime, exporter, receiver, 4, producer=producer, producer_spans=2)
    check_one_trace(spans, 4, endpoint.id)
    (fan_out,) = [s for s in spans if s.name == "webhook.fan_out"]
    assert fan_out.parent is None
    assert dict(fan_out.attributes or {})["catentio.producer.traces"] == 2
    checkouts = list(produced.get_finished_spans())
    assert len(checkouts) == 2
    assert {(link.context.trace_id, link.context.span_id) for link in fan_out.links} == {
        (s.context.trace_id, s.context.span_id) for s in checkouts if s.context is not None
    }


def test_an_untraced_event_in_the_batch_keeps_the_batch_out_of_the_producers_trace(
    sqlite_url: str,
    make_runtime: Any,
    add_endpoint: Any,
    receiver: Any,
    producer_and_exporter: tuple[Tracer, InMemorySpanExporter],
) -> None:
    """One traced and one untraced event: the untraced event's deliveries must not be
    filed under the producer's trace, so the batch links to it instead."""
    producer, produced = producer_and_exporter
    exporter = InMemorySpanExporter()
    tracing = OTelTracing.with_processor(SimpleSpanProcessor(exporter), process="run")
    runtime = make_runtime(sqlite_url, tracing=tracing)
    add_endpoint(runtime, receiver=receiver, path="/hook")
    with runtime.sessions() as session, session.begin():
        publish(session, workspace_id="ws_a", type="run.succeeded", data={})
    with (
        producer.start_as_current_span("checkout"),
        runtime.sessions() as session,
        session.begin(),
    ):
        publish(session, workspace_id="ws_a", type="run.succeeded", data={})
    runtime.poller().poll_once()
    (fan_out,) = [s for s in exporter.get_finished_spans() if s.name == "webhook.fan_out"]
    (checkout,) = produced.get_finished_spans()
    assert fan_out.parent is None and checkout.context is not None
    assert [link.context.span_id for link in fan_out.links] == [checkout.context.span_id]


def test_off_unless_the_otlp_endpoint_is_set() -> None:
    """No OTEL_EXPORTER_OTLP_ENDPOINT: the no-op; set: OpenTelemetry with an OTLP exporter."""
    assert open_tracing(Settings(), process="worker") is NO_TRACING
    settings = Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    tracing = open_tracing(settings, process="worker")
    assert isinstance(tracing, OTelTracing)
    tracing.shutdown()


def test_a_missing_extra_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Endpoint set without the [otel] extra: a ConfigurationError naming the extra."""
    monkeypatch.setitem(sys.modules, "worker.telemetry.otel", None)
    settings = Settings(otel_endpoint="http://127.0.0.1:4318")
    with pytest.raises(ConfigurationError, match=r"catentio-webhooks\[otel\]"):
        open_tracing(settings, process="poller")


def test_the_default_path_never_loads_our_opentelemetry_code() -> None:
    """Without the endpoint, building a runtime never imports worker.telemetry.otel, and
    OpenTelemetry is only in the [otel] extra, not in the default dependencies. (redis-py
    imports opentelemetry by itself when it happens to be installed.)"""
    code = (
        "import sys\n"
        "from worker.cli import main\n"
        "from worker.runtime import Runtime\n"
        "from worker.settings import Settings\n"
        "from worker.telemetry.tracing import open_tracing\n"
        "runtime = Runtime.open(Settings(database_url='sqlite://'), "
        "tracing=open_tracing(Settings(), process='run'))\n"
        "runtime.close()\n"
        "print('worker.telemetry.otel' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any("opentelemetry" in dep for dep in project["dependencies"])
    otel = project["optional-dependencies"]["otel"]
    assert {"opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"} <= {
        dep.split(">")[0].split("=")[0] for dep in otel
    }


def test_an_unsampled_producer_means_no_spans_downstream(
    sqlite_url: str, make_runtime: Any, add_endpoint: Any, receiver: Any
) -> None:
    """The producer's sampling decision carries over: a traceparent with the sampled flag
    off gives a fan-out (and deliveries) that record nothing; the event is delivered."""
    exporter = InMemorySpanExporter()
    tracing = OTelTracing.with_processor(SimpleSpanProcessor(exporter), process="run")
    runtime = make_runtime(sqlite_url, tracing=tracing)
    add_endpoint(runtime, receiver=receiver, path="/hook")
    unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    with runtime.sessions() as session, session.begin():
        publish(
            session,
            workspace_id="ws_a",
            type="run.succeeded",
            data={},
            trace_context={"traceparent": unsampled},
        )
    runtime.poller().poll_once()
    runtime.start_worker(1)
    assert receiver.wait_for(1, path="/hook", timeout=30)
    names = {s.name for s in exporter.get_finished_spans()}
    assert not names & {"webhook.fan_out", "webhook.deliver", "POST"}
