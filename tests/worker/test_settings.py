"""Settings are read once from the environment, with clear errors naming the variable."""

from __future__ import annotations

import ipaddress
import json
from datetime import timedelta
from typing import Any

import pytest

from outbox.database import normalize_url
from worker.durations import format_duration, parse_duration, parse_moment, parse_schedule
from worker.errors import ConfigurationError, InvalidDuration
from worker.settings import DEFAULT_RETRY_SCHEDULE, Settings


def test_defaults_follow_the_design() -> None:
    """No environment: embedded SQLite, no Redis, 8 attempts over about 27.6 hours."""
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite:///")
    assert settings.redis_url is None
    assert settings.max_attempts == 8
    total = sum(DEFAULT_RETRY_SCHEDULE, timedelta())
    assert timedelta(hours=27.5) < total < timedelta(hours=27.7)
    assert settings.request_timeout == 15 and settings.connect_timeout == 5


def test_environment_overrides() -> None:
    """DATABASE_URL, REDIS_URL and CATENTIO_* are read; the schedule parses from text."""
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgres://u:p@db:5432/app",
            "REDIS_URL": "redis://cache:6379/0",
            "CATENTIO_RETRY_SCHEDULE": "5s,5m,30m,2h,5h,10h,10h",
            "CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8, ::1/128",
            "CATENTIO_REQUEST_TIMEOUT": "10s",
            "CATENTIO_WORKER_THREADS": "16",
        }
    )
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.retry_schedule == DEFAULT_RETRY_SCHEDULE
    assert settings.allowed_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert settings.request_timeout == 10.0 and settings.worker_threads == 16


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CATENTIO_RETRY_SCHEDULE", "5s,soon"),
        ("CATENTIO_WORKER_THREADS", "many"),
        ("CATENTIO_ALLOWED_NETWORKS", "10.0.0.300/8"),
        ("CATENTIO_WORKER_THREADS", "0"),
        ("CATENTIO_LOG_FORMAT", "xml"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    """A bad value fails at start-up with an error that says which variable."""
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({name: value})
    assert name.removeprefix("CATENTIO_").lower().split("_")[0] in str(info.value).lower()


def test_encryption_keys_are_not_in_the_repr() -> None:
    """Printing the settings never shows the encryption keys."""
    settings = Settings.from_env({"CATENTIO_ENCRYPTION_KEYS": "k1-secret,k2-secret"})
    assert settings.encryption_keys == ("k1-secret", "k2-secret")
    assert "secret" not in repr(settings)


def test_postgres_scheme_from_platforms_is_accepted() -> None:
    """postgres:// (Heroku-style) and postgresql:// both map to the psycopg 3 driver."""
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5),
        ("5m", 300),
        ("2h", 7200),
        ("3d", 259200),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("90", 90),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    """Durations parse in the forms the CLI and settings accept."""
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5x", "h", "5s5", "-5s", "five minutes"])
def test_bad_durations(text: str) -> None:
    """Anything else is an InvalidDuration with the input quoted."""
    with pytest.raises(InvalidDuration):
        parse_duration(text)


def test_schedule_moment_and_format() -> None:
    """Schedules split on commas; moments accept ISO or 'ago'; format is compact."""
    assert parse_schedule("5s, 1m") == (timedelta(seconds=5), timedelta(minutes=1))
    with pytest.raises(InvalidDuration):
        parse_schedule(" , ")
    from datetime import UTC, datetime

    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert parse_moment("2h", now=now) == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert parse_moment("2026-11-01T00:00:00Z", now=now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_moment("2026-11-01T00:00:00", now=now).tzinfo is not None
    with pytest.raises(InvalidDuration):
        parse_moment("yesterday", now=now)
    assert format_duration(timedelta(seconds=5400)) == "1h30m"
    assert format_duration(timedelta(milliseconds=500)) == "500ms"


def test_runtime_refuses_postgres_without_a_key_before_opening_anything(
    postgres_url: str,
) -> None:
    """Runtime.open against PostgreSQL without CATENTIO_ENCRYPTION_KEYS raises a clear
    ConfigurationError and leaves no engine open (filterwarnings=error would catch a
    ResourceWarning)."""
    from worker.runtime import Runtime

    with pytest.raises(ConfigurationError, match="CATENTIO_ENCRYPTION_KEYS"):
        Runtime.open(Settings(database_url=postgres_url))


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("CATENTIO_LOG_LEVEL", "banana", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("CATENTIO_MAX_HEADER_BYTES", "-5", "from 1 to"),
        ("CATENTIO_SWEEP_INTERVAL", "0", "between 100ms and 1h"),
        ("CATENTIO_SWEEP_AFTER", "0s", "at least 1s"),
        ("CATENTIO_REQUEST_TIMEOUT", "inf", "longer than the longest"),
        ("CATENTIO_REQUEST_TIMEOUT", "nan", "nan"),
        ("CATENTIO_RETENTION", "0s", "at least 1h"),
        ("CATENTIO_RETENTION", "10m", "at least 1h"),
        ("CATENTIO_WORKER_THREADS", "0", "from 1 to 1000"),
        ("CATENTIO_RETRY_JITTER", "1.5", "[0, 1)"),
        ("CATENTIO_RETRY_JITTER", "nan", "finite"),
        ("CATENTIO_OPERATIONAL_EVENTS", "maybe", "true or false"),
        ("CATENTIO_RATE_LIMIT", "0", "above 0"),
        ("CATENTIO_DATABASE_CONNECT_TIMEOUT", "0", "0.1s to 5m"),
        ("CATENTIO_RETRY_SCHEDULE", "5s,0s", "at least 1ms"),
        ("CATENTIO_MAX_CONCURRENCY", "1.5", "whole number"),
    ],
)
def test_accepted_but_wrong_values_are_refused_with_name_and_range(
    name: str, value: str, allowed: str
) -> None:
    """Values that used to be accepted (or crashed later) are refused at start-up with
    the variable's name and what it accepts."""
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({name: value})
    message = str(info.value)
    assert name in message, message
    assert allowed in message, message


def test_a_connect_timeout_longer_than_the_deadline_is_refused() -> None:
    """The connect is part of the attempt's total deadline: it cannot be longer."""
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"CATENTIO_REQUEST_TIMEOUT": "10s", "CATENTIO_CONNECT_TIMEOUT": "20s"})
    assert "CATENTIO_CONNECT_TIMEOUT" in str(info.value)
    assert "CATENTIO_REQUEST_TIMEOUT" in str(info.value)


def test_unknown_catentio_variables_are_warned_about_once(tmp_path: Any) -> None:
    """A CATENTIO_* name no setting reads (a typo) is named in one warning at start-up,
    with the setting it probably meant; the command still runs."""
    from tests.support.cli import run_cli

    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CATENTIO_RETRY_SHEDULE": "5s",
        "CATENTIO_LOG_FORMAT": "json",
        "REDIS_URL": "",
    }
    result = run_cli(env, "secrets", "generate-key")
    assert result.exit_code == 0, result.output
    warnings = [
        json.loads(line)
        for line in result.stderr.splitlines()
        if "settings.unknown_variable" in line
    ]
    assert len(warnings) == 1
    assert warnings[0]["variable"] == "CATENTIO_RETRY_SHEDULE"
    assert "CATENTIO_RETRY_SCHEDULE" in warnings[0]["hint"]
    assert Settings.from_env({"CATENTIO_RETRY_SHEDULE": "5s"}).unknown_variables == (
        "CATENTIO_RETRY_SHEDULE",
    )
