"""One typed settings object, read once from the environment and passed down.

Nothing in this project reads the environment anywhere else, and nothing reads it at
import time: ``Settings.from_env()`` is called by the command line, once.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from outbox.errors import InvalidSchemaName
from outbox.namespace import DEFAULT_SCHEMA, check_schema
from outbox.publish import DEFAULT_MAX_BODY_BYTES
from worker.durations import format_duration, parse_duration, parse_schedule
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

DEFAULT_API_HOST = "127.0.0.1"
"""Where ``catentio-webhooks api`` (and ``run``) listen unless told otherwise."""

DEFAULT_API_PORT = 8080
"""The HTTP API's port unless ``PORT`` or ``CATENTIO_API_PORT`` says otherwise."""

DEFAULT_API_READ_LIMIT = "100/second"
"""Read requests (GET) per workspace, in the ``limits`` notation ("N/second")."""

DEFAULT_API_WRITE_LIMIT = "20/second"
"""Write requests (POST, PATCH, DELETE) per workspace."""

DEFAULT_IDEMPOTENCY_TTL = timedelta(hours=24)
"""How long an ``Idempotency-Key`` answers with the stored response."""

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


DEFAULT_DATABASE_CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a PostgreSQL connection (a server that accepts TCP and never
answers must not hang a command)."""

DEFAULT_DATABASE_STATEMENT_TIMEOUT = 30.0
"""Longest a PostgreSQL statement may run before the server cancels it, in seconds."""

DEFAULT_STARTUP_TIMEOUT = 60.0
"""How long the long-running processes wait at start-up for the database, the schema
and Redis before giving up with exit code 1."""

MIN_RETENTION = timedelta(hours=1)
"""Shortest ``CATENTIO_RETENTION``: less would prune history people still look at."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

KNOWN_ELSEWHERE = frozenset(
    {"CATENTIO_TEST_DATABASE_URL", "CATENTIO_TEST_REDIS_URL", "CATENTIO_BENCH"}
)
"""``CATENTIO_*`` variables that are not settings but are read by the test suite."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def _networks(value: str) -> tuple[IPNetwork, ...]:
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in value.split(",")
        if part.strip()
    )


def _number(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _integer(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None


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


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"{value!r} is not a log level (use one of {', '.join(LOG_LEVELS)})")
    return level


def _log_format(value: str) -> str:
    fmt = value.strip().lower()
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"{value!r} is not a log format (use auto, json or console)")
    return fmt


VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "DATABASE_URL": ("database_url", str),
    "CATENTIO_DB_SCHEMA": ("db_schema", str.strip),
    "REDIS_URL": ("redis_url", str),
    "CATENTIO_DATABASE_CONNECT_TIMEOUT": ("database_connect_timeout", _seconds),
    "CATENTIO_DATABASE_STATEMENT_TIMEOUT": ("database_statement_timeout", _seconds),
    "CATENTIO_STARTUP_TIMEOUT": ("startup_timeout", _seconds),
    "CATENTIO_RETRY_SCHEDULE": ("retry_schedule", parse_schedule),
    "CATENTIO_RETRY_JITTER": ("retry_jitter", _number),
    "CATENTIO_REQUEST_TIMEOUT": ("request_timeout", _seconds),
    "CATENTIO_CONNECT_TIMEOUT": ("connect_timeout", _seconds),
    "CATENTIO_MAX_RESPONSE_BYTES": ("max_response_bytes", _integer),
    "CATENTIO_MAX_HEADER_BYTES": ("max_header_bytes", _integer),
    "CATENTIO_MAX_BODY_BYTES": ("max_body_bytes", _integer),
    "CATENTIO_RETRY_AFTER_CAP": ("retry_after_cap", parse_duration),
    "CATENTIO_LEASE_MARGIN": ("lease_margin", parse_duration),
    "CATENTIO_WORKER_THREADS": ("worker_threads", _integer),
    "CATENTIO_POLL_INTERVAL": ("poll_interval", _seconds),
    "CATENTIO_POLL_BATCH_SIZE": ("poll_batch_size", _integer),
    "CATENTIO_LISTEN": ("listen", _bool),
    "CATENTIO_SWEEP_INTERVAL": ("sweep_interval", _seconds),
    "CATENTIO_SWEEP_AFTER": ("sweep_after", parse_duration),
    "CATENTIO_MAX_CONCURRENCY": ("max_concurrency", _integer),
    "CATENTIO_CIRCUIT_THRESHOLD": ("circuit_threshold", _integer),
    "CATENTIO_DISABLE_AFTER": ("disable_after", parse_duration),
    "CATENTIO_LIMITED_RETRY": ("limited_retry", parse_duration),
    "CATENTIO_PAUSED_RECHECK": ("paused_recheck", parse_duration),
    "CATENTIO_RATE_LIMIT": ("rate_limit", _number),
    "CATENTIO_OPERATIONAL_EVENTS": ("operational_events", _bool),
    "CATENTIO_ALLOWED_NETWORKS": ("allowed_networks", _networks),
    "CATENTIO_ENCRYPTION_KEYS": ("encryption_keys", _keys),
    "CATENTIO_RETENTION": ("retention", parse_duration),
    "CATENTIO_QUEUE": ("queue_name", str),
    "CATENTIO_REDIS_NAMESPACE": ("redis_namespace", str),
    "CATENTIO_LOG_LEVEL": ("log_level", _log_level),
    "CATENTIO_LOG_FORMAT": ("log_format", _log_format),
    "CATENTIO_API_HOST": ("api_host", str.strip),
    "CATENTIO_API_PORT": ("api_port", _integer),
    "CATENTIO_RUN_API": ("run_api", _bool),
    "CATENTIO_RUN_API_PORT": ("run_api_port", _integer),
    "CATENTIO_API_READ_LIMIT": ("api_read_limit", str.strip),
    "CATENTIO_API_WRITE_LIMIT": ("api_write_limit", str.strip),
    "CATENTIO_IDEMPOTENCY_TTL": ("idempotency_ttl", parse_duration),
    "CATENTIO_PORTAL_SECRET": ("portal_secrets", _keys),
    "CATENTIO_PORTAL_URL": ("portal_url", _portal_url),
    "CATENTIO_PORTAL_LINK_TTL": ("portal_link_ttl", parse_duration),
    "CATENTIO_PORTAL_SESSION_TTL": ("portal_session_ttl", parse_duration),
    "CATENTIO_PORTAL_FRAME_ANCESTORS": ("portal_frame_ancestors", _frame_ancestors),
    "CATENTIO_METRICS_PORT": ("metrics_port", _integer),
    "CATENTIO_METRICS_HOST": ("metrics_host", str.strip),
    "CATENTIO_METRICS_ENDPOINT_LABELS": ("metrics_endpoint_labels", _bool),
    "CATENTIO_API_METRICS": ("api_metrics", _bool),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("otel_endpoint", str.strip),
    "HONCHO_PROCESS_NAME": ("procfile_process", str),
    "PS": ("procfile_process", str),
}
"""Every environment variable the settings read: the field it sets and its parser."""

_VARIABLE_OF = {attribute: name for name, (attribute, _) in VARIABLES.items()}


def variable_for(attribute: str) -> str:
    """The environment variable that sets the field ``attribute``."""
    return _VARIABLE_OF.get(attribute, attribute)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything configurable. Build it with :meth:`from_env` or directly in tests."""

    database_url: str = DEFAULT_DATABASE_URL
    # Our PostgreSQL schema in the (possibly shared) database; the table prefix on SQLite.
    db_schema: str = DEFAULT_SCHEMA
    redis_url: str | None = None
    database_connect_timeout: float = DEFAULT_DATABASE_CONNECT_TIMEOUT
    database_statement_timeout: float = DEFAULT_DATABASE_STATEMENT_TIMEOUT
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
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
    # LISTEN for published events on PostgreSQL (off behind a transaction-mode pooler,
    # which cannot hold a LISTEN; polling alone still finds every event).
    listen: bool = True
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
    api_host: str = DEFAULT_API_HOST
    api_port: int = DEFAULT_API_PORT
    # ``run`` serves the API too (on api_host:run_api_port; 0 picks a free port).
    run_api: bool = True
    run_api_port: int = DEFAULT_API_PORT
    api_read_limit: str = DEFAULT_API_READ_LIMIT
    api_write_limit: str = DEFAULT_API_WRITE_LIMIT
    idempotency_ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL
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
    # The API serves /metrics, /healthz and /readyz on its own port too (one-port platforms).
    api_metrics: bool = False
    # OpenTelemetry traces go here when set (the [otel] extra); the SDK reads the rest of
    # its OTEL_* variables itself.
    otel_endpoint: str | None = None
    # Set when a local Procfile runner started this process: honcho's
    # HONCHO_PROCESS_NAME or foreman's PS (e.g. "release.1").
    procfile_process: str | None = None
    # CATENTIO_* names in the environment that no setting reads (typos, most likely).
    unknown_variables: tuple[str, ...] = ()

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

        Raises :class:`~outbox.errors.ConfigurationError` naming the variable at fault and
        what it accepts. ``CATENTIO_*`` names no setting reads are kept in
        ``unknown_variables``, for the command line to warn about once.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (attribute, parse) in VARIABLES.items():
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[attribute] = parse(raw)
            except (ValueError, InvalidDuration) as exc:
                raise ConfigurationError(f"{name}={raw!r}: {exc}") from None
        if env.get("PORT", "").strip():
            # Procfile platforms say where the web process listens (on every address).
            values["api_port"] = _port("PORT", env["PORT"].strip())
            values.setdefault("api_host", "0.0.0.0")
        values["unknown_variables"] = tuple(
            sorted(
                name
                for name in env
                if name.startswith("CATENTIO_")
                and name not in VARIABLES
                and name not in KNOWN_ELSEWHERE
            )
        )
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse values and combinations that cannot work, naming the variable and the
        range it accepts."""
        _check_database_url(self.database_url)
        try:
            check_schema(self.db_schema)
        except InvalidSchemaName as exc:
            raise ConfigurationError(f"CATENTIO_DB_SCHEMA: {exc}") from None
        if self.redis_url is not None:
            _check_redis_url(self.redis_url)
        second = timedelta(seconds=1)
        _in_range("retry_jitter", self.retry_jitter, 0, 1, "a fraction in [0, 1)", upper_open=True)
        _in_range("request_timeout", self.request_timeout, 0.001, 3600, "between 1ms and 1h")
        _in_range(
            "connect_timeout",
            self.connect_timeout,
            0.001,
            self.request_timeout,
            f"between 1ms and CATENTIO_REQUEST_TIMEOUT ({self.request_timeout:g}s): the "
            "connect is part of the attempt's total deadline",
        )
        _in_range("database_connect_timeout", self.database_connect_timeout, 0.1, 300, "0.1s to 5m")
        _in_range(
            "database_statement_timeout", self.database_statement_timeout, 0.1, 3600, "0.1s to 1h"
        )
        _in_range("startup_timeout", self.startup_timeout, 0, 3600, "0s to 1h")
        for field_name, low, high in (
            ("max_response_bytes", 1, 64 * 1024 * 1024),
            ("max_header_bytes", 1, 1024 * 1024),
            ("max_body_bytes", 1, 64 * 1024 * 1024),
            ("worker_threads", 1, 1000),
            ("poll_batch_size", 1, 100_000),
            ("max_concurrency", 1, 100_000),
            ("circuit_threshold", 1, 1_000_000),
        ):
            _in_range(
                field_name,
                getattr(self, field_name),
                low,
                high,
                f"a whole number from {low} to {high}",
            )
        _in_range("poll_interval", self.poll_interval, 0.001, 60, "between 1ms and 60s")
        _in_range("sweep_interval", self.sweep_interval, 0.1, 3600, "between 100ms and 1h")
        millisecond = timedelta(milliseconds=1)
        durations: tuple[tuple[str, timedelta], ...] = (
            ("sweep_after", second),
            ("lease_margin", second),
            ("retry_after_cap", timedelta(0)),
            ("disable_after", second),
            ("limited_retry", millisecond),
            ("paused_recheck", millisecond),
        )
        for name, least in durations:
            value: timedelta = getattr(self, name)
            if value < least:
                raise ConfigurationError(
                    f"{variable_for(name)} must be at least {format_duration(least) or '0s'}, "
                    f"got {format_duration(value) or '0s'}"
                )
        for index, delay in enumerate(self.retry_schedule, start=1):
            if delay < millisecond:
                raise ConfigurationError(
                    f"CATENTIO_RETRY_SCHEDULE: delay {index} must be at least 1ms, got "
                    f"{format_duration(delay) or '0s'}"
                )
        if self.retention is not None and self.retention < MIN_RETENTION:
            raise ConfigurationError(
                f"CATENTIO_RETENTION must be at least {format_duration(MIN_RETENTION)} (or unset "
                f"to keep everything), got {format_duration(self.retention) or '0s'}: a shorter "
                "retention would delete the history of deliveries people are still looking at"
            )
        if self.rate_limit is not None:
            _in_range(
                "rate_limit",
                self.rate_limit,
                0,
                1_000_000,
                "a number of deliveries per second above 0, at most 1000000",
                lower_open=True,
            )
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigurationError(
                f"CATENTIO_METRICS_PORT must be a port number (0-65535), got {self.metrics_port}"
            )
        if not timedelta(0) < self.portal_link_ttl <= DEFAULT_PORTAL_MAX_LINK_TTL:
            raise ConfigurationError("CATENTIO_PORTAL_LINK_TTL must be positive and at most 7d")
        if self.portal_session_ttl <= timedelta(0):
            raise ConfigurationError("CATENTIO_PORTAL_SESSION_TTL must be positive")
        if self.log_level not in LOG_LEVELS:
            raise ConfigurationError(f"CATENTIO_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in ("auto", "json", "console"):
            raise ConfigurationError("CATENTIO_LOG_FORMAT must be auto, json or console")
        for name, port in (("api_port", self.api_port), ("run_api_port", self.run_api_port)):
            if not 0 <= port <= 65535:
                raise ConfigurationError(f"{name} must be a TCP port (0-65535), got {port}")
        for name, limit in (
            ("CATENTIO_API_READ_LIMIT", self.api_read_limit),
            ("CATENTIO_API_WRITE_LIMIT", self.api_write_limit),
        ):
            if not _is_rate(limit):
                raise ConfigurationError(
                    f"{name}={limit!r} must look like '100/second' or '20 per second'"
                )


def _port(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a TCP port") from None


def _is_rate(value: str) -> bool:
    # Imported here: ``limits`` is the API's dependency, not every command's.
    from limits import parse

    try:
        parse(value)
    except ValueError:
        return False
    return True


def _in_range(
    attribute: str,
    value: float,
    low: float,
    high: float,
    allowed: str,
    *,
    lower_open: bool = False,
    upper_open: bool = False,
) -> None:
    """Raise ``ConfigurationError`` naming the variable unless ``low <= value <= high``."""
    above = value > low if lower_open else value >= low
    below = value < high if upper_open else value <= high
    if not (math.isfinite(value) and above and below):
        raise ConfigurationError(f"{variable_for(attribute)} must be {allowed}, got {value:g}")


DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "sqlite")
"""``DATABASE_URL`` schemes we run on: PostgreSQL through psycopg 3, and SQLite."""

REDIS_SCHEMES = ("redis", "rediss", "unix")


def _shown(url: str) -> str:
    """``url`` without its password, for an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _check_database_url(url: str) -> None:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in DATABASE_SCHEMES:
        raise ConfigurationError(
            f"DATABASE_URL={_shown(url)!r} is not supported: use postgresql://user@host/db "
            "(postgres:// and postgresql+psycopg:// too; the psycopg 3 driver) or "
            "sqlite:///path/to/file.sqlite3"
        )
    try:
        make_url(url.replace("postgres://", "postgresql://", 1))
    except ArgumentError:
        raise ConfigurationError(
            f"DATABASE_URL={_shown(url)!r} is not a valid database URL"
        ) from None


def _check_redis_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in REDIS_SCHEMES or (parts.scheme != "unix" and not parts.hostname):
        raise ConfigurationError(
            f"REDIS_URL={_shown(url)!r} is not supported: use redis://host:6379/0, "
            "rediss:// (TLS) or unix:///path/to/redis.sock"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ConfigurationError(f"REDIS_URL={_shown(url)!r} has an invalid port") from None
