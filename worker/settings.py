"""One typed settings object, read once from the environment and passed down.

Nothing in this project reads the environment anywhere else, and nothing reads it at
import time: ``Settings.from_env()`` is called by the command line, once.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from outbox.publish import DEFAULT_MAX_BODY_BYTES
from worker.durations import parse_duration, parse_schedule
from worker.errors import ConfigurationError, InvalidDuration

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_DATABASE_URL = "sqlite:///catentio-webhooks.sqlite3"
"""The embedded default: a SQLite file in the working directory."""

DEFAULT_RETRY_SCHEDULE = tuple(
    timedelta(seconds=s) for s in (5, 300, 1800, 7200, 18000, 36000, 36000)
)
"""Delays after each failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
(8 attempts over about 27.6 hours)."""

DEFAULT_RETRY_JITTER = 0.1
"""Each delay is stretched or shrunk by up to this fraction, so retries do not align."""

DEFAULT_REQUEST_TIMEOUT = 15.0
"""Total deadline of one attempt, connect to last response byte, in seconds."""

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Deadline for the TCP (and TLS) connection, in seconds."""

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024
"""Response body bytes read and stored per attempt; the rest is not read."""

DEFAULT_MAX_HEADER_BYTES = 16 * 1024
"""Largest total size of the custom request headers or of the response headers."""

DEFAULT_RETRY_AFTER_CAP = timedelta(hours=1)
"""Longest ``Retry-After`` honoured on 429/503."""

DEFAULT_LEASE_MARGIN = timedelta(seconds=30)
"""How much longer than an attempt's deadline a claimed delivery stays leased."""

DEFAULT_WORKER_THREADS = 8
"""Delivery threads per worker process."""

DEFAULT_MAX_CONCURRENCY = 10
"""Deliveries in flight to one endpoint, across every worker."""

DEFAULT_CIRCUIT_THRESHOLD = 5
"""Consecutive failures after which an endpoint gets one probe at a time."""

DEFAULT_DISABLE_AFTER = timedelta(days=5)
"""An endpoint failing continuously this long is disabled."""

DEFAULT_LIMITED_RETRY = timedelta(seconds=1)
"""How soon a delivery held back by its endpoint's concurrency limit looks again."""

DEFAULT_PAUSED_RECHECK = timedelta(seconds=60)
"""How often a delivery to a paused endpoint looks again."""

DEFAULT_POLL_INTERVAL = 0.5
"""Longest sleep between polls when the outbox is empty, in seconds."""

DEFAULT_POLL_BATCH_SIZE = 200
"""Events claimed per poll transaction."""

DEFAULT_SWEEP_INTERVAL = 10.0
"""Seconds between sweeps."""

DEFAULT_SWEEP_AFTER = timedelta(seconds=30)
"""How long a due, unleased delivery's bell may go unanswered before it is rung again."""

DEFAULT_METRICS_HOST = "127.0.0.1"
"""Where the ``/metrics``, ``/healthz`` and ``/readyz`` listener binds; set
``CATENTIO_METRICS_HOST=0.0.0.0`` (or ``::``) for a Prometheus on another host."""

DEFAULT_QUEUE = "catentio-webhooks"
"""The dramatiq queue the delivery actor listens on."""

DEFAULT_PORTAL_URL = "http://127.0.0.1:8080"
"""Where the process serving the portal is reached; portal links start with it."""

DEFAULT_PORTAL_LINK_TTL = timedelta(hours=1)
"""How long a portal link can be opened after it was minted, unless ``--ttl`` says."""

DEFAULT_PORTAL_MAX_LINK_TTL = timedelta(days=7)
"""The longest ``--ttl`` a portal link may be given."""

DEFAULT_PORTAL_SESSION_TTL = timedelta(hours=8)
"""How long the session opened by a portal link lasts."""

DEFAULT_PORTAL_FRAME_ANCESTORS = "'none'"
"""CSP ``frame-ancestors`` of the portal: nobody may frame it unless configured."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(f"{value!r} is not a boolean (use true/false)")


def _networks(value: str) -> tuple[IPNetwork, ...]:
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in value.split(",")
            if part.strip()
        )
    except ValueError as exc:
        raise ConfigurationError(f"CATENTIO_ALLOWED_NETWORKS: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything configurable. Build it with :meth:`from_env` or directly in tests."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    retry_schedule: tuple[timedelta, ...] = DEFAULT_RETRY_SCHEDULE
    retry_jitter: float = DEFAULT_RETRY_JITTER
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    retry_after_cap: timedelta = DEFAULT_RETRY_AFTER_CAP
    lease_margin: timedelta = DEFAULT_LEASE_MARGIN
    worker_threads: int = DEFAULT_WORKER_THREADS
    poll_interval: float = DEFAULT_POLL_INTERVAL
    poll_batch_size: int = DEFAULT_POLL_BATCH_SIZE
    sweep_interval: float = DEFAULT_SWEEP_INTERVAL
    sweep_after: timedelta = DEFAULT_SWEEP_AFTER
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    circuit_threshold: int = DEFAULT_CIRCUIT_THRESHOLD
    disable_after: timedelta = DEFAULT_DISABLE_AFTER
    limited_retry: timedelta = DEFAULT_LIMITED_RETRY
    paused_recheck: timedelta = DEFAULT_PAUSED_RECHECK
    # Deliveries per second to an endpoint that sets no rate limit of its own (None: none).
    rate_limit: float | None = None
    # Publish webhook.endpoint.disabled / webhook.delivery.exhausted into the outbox.
    operational_events: bool = True
    allowed_networks: tuple[IPNetwork, ...] = ()
    encryption_keys: tuple[str, ...] = field(default=(), repr=False)
    retention: timedelta | None = None
    queue_name: str = DEFAULT_QUEUE
    redis_namespace: str = "catentio"
    log_level: str = "INFO"
    log_format: str = "auto"
    # Signs portal links and sessions, newest first (several while rotating). Empty: the
    # embedded mode generates one into a key file beside the SQLite database.
    portal_secrets: tuple[str, ...] = field(default=(), repr=False)
    portal_url: str = DEFAULT_PORTAL_URL
    portal_link_ttl: timedelta = DEFAULT_PORTAL_LINK_TTL
    portal_session_ttl: timedelta = DEFAULT_PORTAL_SESSION_TTL
    # Space-separated CSP sources allowed to embed the portal in a frame (the control plane).
    portal_frame_ancestors: str = DEFAULT_PORTAL_FRAME_ANCESTORS
    # The process's /metrics, /healthz and /readyz port (None: off; 0: any free port).
    metrics_port: int | None = None
    metrics_host: str = DEFAULT_METRICS_HOST
    # An `endpoint` label on the attempt and hold counters: one series per endpoint.
    metrics_endpoint_labels: bool = False
    # OpenTelemetry traces go here when set (the [otel] extra); the SDK reads the rest of
    # its OTEL_* variables itself.
    otel_endpoint: str | None = None

    @property
    def lease_duration(self) -> timedelta:
        """How long a claim holds a delivery: the attempt's deadline plus a margin."""
        return timedelta(seconds=self.request_timeout) + self.lease_margin

    @property
    def sweep_delay(self) -> timedelta:
        """How long a due delivery whose bell was lost waits, at most, for the sweeper."""
        return self.sweep_after + timedelta(seconds=self.sweep_interval)

    @property
    def max_attempts(self) -> int:
        """Attempts per delivery: one, plus one after each delay of the schedule."""
        return len(self.retry_schedule) + 1

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``DATABASE_URL``, ``REDIS_URL`` and the ``CATENTIO_*`` variables.

        Raises :class:`~outbox.errors.ConfigurationError` naming the variable at fault.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("DATABASE_URL"):
            values["database_url"] = env["DATABASE_URL"]
        if env.get("REDIS_URL"):
            values["redis_url"] = env["REDIS_URL"]
        if env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
            values["otel_endpoint"] = env["OTEL_EXPORTER_OTLP_ENDPOINT"].strip()
        readers: dict[str, tuple[str, Any]] = {
            "CATENTIO_RETRY_SCHEDULE": ("retry_schedule", parse_schedule),
            "CATENTIO_RETRY_JITTER": ("retry_jitter", float),
            "CATENTIO_REQUEST_TIMEOUT": ("request_timeout", _seconds),
            "CATENTIO_CONNECT_TIMEOUT": ("connect_timeout", _seconds),
            "CATENTIO_MAX_RESPONSE_BYTES": ("max_response_bytes", int),
            "CATENTIO_MAX_HEADER_BYTES": ("max_header_bytes", int),
            "CATENTIO_MAX_BODY_BYTES": ("max_body_bytes", int),
            "CATENTIO_RETRY_AFTER_CAP": ("retry_after_cap", parse_duration),
            "CATENTIO_LEASE_MARGIN": ("lease_margin", parse_duration),
            "CATENTIO_WORKER_THREADS": ("worker_threads", int),
            "CATENTIO_POLL_INTERVAL": ("poll_interval", _seconds),
            "CATENTIO_POLL_BATCH_SIZE": ("poll_batch_size", int),
            "CATENTIO_SWEEP_INTERVAL": ("sweep_interval", _seconds),
            "CATENTIO_SWEEP_AFTER": ("sweep_after", parse_duration),
            "CATENTIO_MAX_CONCURRENCY": ("max_concurrency", int),
            "CATENTIO_CIRCUIT_THRESHOLD": ("circuit_threshold", int),
            "CATENTIO_DISABLE_AFTER": ("disable_after", parse_duration),
            "CATENTIO_LIMITED_RETRY": ("limited_retry", parse_duration),
            "CATENTIO_PAUSED_RECHECK": ("paused_recheck", parse_duration),
            "CATENTIO_RATE_LIMIT": ("rate_limit", float),
            "CATENTIO_OPERATIONAL_EVENTS": ("operational_events", _bool),
            "CATENTIO_ALLOWED_NETWORKS": ("allowed_networks", _networks),
            "CATENTIO_ENCRYPTION_KEYS": ("encryption_keys", _keys),
            "CATENTIO_RETENTION": ("retention", parse_duration),
            "CATENTIO_QUEUE": ("queue_name", str),
            "CATENTIO_REDIS_NAMESPACE": ("redis_namespace", str),
            "CATENTIO_LOG_LEVEL": ("log_level", str.upper),
            "CATENTIO_LOG_FORMAT": ("log_format", str.lower),
            "CATENTIO_PORTAL_SECRET": ("portal_secrets", _keys),
            "CATENTIO_PORTAL_URL": ("portal_url", _portal_url),
            "CATENTIO_PORTAL_LINK_TTL": ("portal_link_ttl", parse_duration),
            "CATENTIO_PORTAL_SESSION_TTL": ("portal_session_ttl", parse_duration),
            "CATENTIO_PORTAL_FRAME_ANCESTORS": ("portal_frame_ancestors", _frame_ancestors),
            "CATENTIO_METRICS_PORT": ("metrics_port", int),
            "CATENTIO_METRICS_HOST": ("metrics_host", str.strip),
            "CATENTIO_METRICS_ENDPOINT_LABELS": ("metrics_endpoint_labels", _bool),
        }
        for name, (attribute, parse) in readers.items():
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[attribute] = parse(raw)
            except (ValueError, InvalidDuration) as exc:
                raise ConfigurationError(f"{name}={raw!r}: {exc}") from None
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse combinations that cannot work."""
        positive = {
            "request_timeout": self.request_timeout,
            "connect_timeout": self.connect_timeout,
            "max_response_bytes": self.max_response_bytes,
            "max_body_bytes": self.max_body_bytes,
            "worker_threads": self.worker_threads,
            "poll_batch_size": self.poll_batch_size,
            "max_concurrency": self.max_concurrency,
            "circuit_threshold": self.circuit_threshold,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigurationError(f"{name} must be positive, got {value}")
        durations = {
            "disable_after": self.disable_after,
            "limited_retry": self.limited_retry,
            "paused_recheck": self.paused_recheck,
        }
        for name, duration in durations.items():
            if duration <= timedelta(0):
                raise ConfigurationError(f"{name} must be positive, got {duration}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ConfigurationError("rate_limit must be positive (deliveries per second)")
        if not 0 <= self.retry_jitter < 1:
            raise ConfigurationError("retry_jitter must be in [0, 1)")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigurationError(
                f"CATENTIO_METRICS_PORT must be a port number (0-65535), got {self.metrics_port}"
            )
        if self.log_format not in ("auto", "json", "console"):
            raise ConfigurationError("CATENTIO_LOG_FORMAT must be auto, json or console")
        if not timedelta(0) < self.portal_link_ttl <= DEFAULT_PORTAL_MAX_LINK_TTL:
            raise ConfigurationError("CATENTIO_PORTAL_LINK_TTL must be positive and at most 7d")
        if self.portal_session_ttl <= timedelta(0):
            raise ConfigurationError("CATENTIO_PORTAL_SESSION_TTL must be positive")


def _seconds(value: str) -> float:
    return parse_duration(value).total_seconds()


def _portal_url(value: str) -> str:
    url = value.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return url


def _frame_ancestors(value: str) -> str:
    """Space-separated CSP sources; nothing that could end the directive or the header."""
    sources = value.split()
    if not sources or any(c in value for c in ';,\r\n"<>'):
        raise ValueError("must be space-separated CSP sources, e.g. https://app.example.com")
    return " ".join(sources)


def _keys(value: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in value.split(",") if k.strip())
