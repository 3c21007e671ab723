"""``run``, ``poller`` and ``worker``: the long-running processes."""

from __future__ import annotations

import signal
import threading

import click
import structlog

from worker.cli.state import State, pass_state
from worker.errors import ConfigurationError
from worker.runtime import Runtime
from worker.settings import Settings
from worker.telemetry.exporter import Telemetry, serving
from worker.telemetry.metrics import NO_METRICS
from worker.telemetry.tracing import open_tracing

log = structlog.get_logger(__name__)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (logged once)."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("shutdown.requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _open(settings: Settings, process: str) -> tuple[Runtime, Telemetry | None]:
    """The runtime, counting into a Prometheus registry when CATENTIO_METRICS_PORT is set
    and tracing when OTEL_EXPORTER_OTLP_ENDPOINT is (``runtime.close()`` flushes)."""
    # `run` serves the API too, and CATENTIO_API_METRICS puts its metrics on the API's port.
    metrics_on = settings.metrics_port is not None or (process == "run" and settings.api_metrics)
    telemetry = Telemetry(settings, process=process) if metrics_on else None
    runtime = Runtime.open(
        settings,
        metrics=telemetry.metrics if telemetry else NO_METRICS,
        tracing=open_tracing(settings, process=process),
        startup_timeout=settings.startup_timeout,
    )
    return runtime, telemetry


def _needs_redis(state: State, command: str) -> None:
    if not state.settings.redis_url:
        raise ConfigurationError(
            f"`{command}` runs one half of the pipeline and needs REDIS_URL to reach the "
            "other half; without Redis use `catentio-webhooks run` (both in one process)"
        )


@click.command("run")
@click.option("--threads", type=click.IntRange(min=1), help="Delivery threads.")
@click.option(
    "--api-port",
    type=click.IntRange(0, 65535),
    help="Serve the HTTP API and the portal on 127.0.0.1 at this port (default "
    "CATENTIO_RUN_API_PORT, 8080; 0 picks a free one).",
)
@click.option("--no-api", is_flag=True, help="Do not serve the HTTP API (nor the portal).")
@pass_state
def run(state: State, threads: int | None, api_port: int | None, no_api: bool) -> None:
    """Poller, delivery workers, the HTTP API and the portal in one process (embedded,
    or on PostgreSQL + Redis)."""
    from worker.api.server import ApiService, context_for_runtime, portal_tokens_for

    settings = state.settings
    serves_api = settings.run_api and not no_api
    # The portal's secret is checked before anything starts (required on PostgreSQL).
    portal_tokens = portal_tokens_for(settings) if serves_api else None
    stop = stop_on_signals()
    runtime, telemetry = _open(settings, "run")
    service: ApiService | None = None
    mode = "redis" if settings.redis_url else "in-process"
    log.info("run.started", broker=mode, threads=threads or settings.worker_threads)
    try:
        own_port = telemetry if settings.metrics_port is not None else None
        with serving(own_port, runtime.engine, runtime.sessions), runtime.running(threads=threads):
            if serves_api:
                port = settings.run_api_port if api_port is None else api_port
                context = context_for_runtime(
                    runtime, portal_tokens=portal_tokens, telemetry=telemetry
                )
                service = ApiService(context, host=settings.api_host, port=port)
                service.start()
            stop.wait()
    finally:
        if service is not None:
            service.stop(dispose=False)
        runtime.close()
    log.info("run.stopped")


@click.command("poller")
@pass_state
def poller(state: State) -> None:
    """Fan out outbox events and sweep for lost messages (run one or more)."""
    _needs_redis(state, "poller")
    stop = stop_on_signals()
    runtime, telemetry = _open(state.settings, "poller")
    log.info("poller.started")
    try:
        with serving(telemetry, runtime.engine, runtime.sessions):
            runtime.run_poller(stop)
    finally:
        runtime.close()
    log.info("poller.stopped")


@click.command("worker")
@click.option("--threads", type=click.IntRange(min=1), help="Delivery threads.")
@pass_state
def worker(state: State, threads: int | None) -> None:
    """dramatiq delivery workers on the Redis broker (run as many as you need)."""
    _needs_redis(state, "worker")
    stop = stop_on_signals()
    runtime, telemetry = _open(state.settings, "worker")
    runtime.start_worker(threads)
    log.info("worker.started", threads=threads or state.settings.worker_threads)
    try:
        with serving(telemetry, runtime.engine, runtime.sessions):
            stop.wait()
    finally:
        runtime.close()
    log.info("worker.stopped")


COMMANDS = [run, poller, worker]
