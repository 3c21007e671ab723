"""Where the real services are, and the settings every test runtime starts from.

Tests that need PostgreSQL or Redis are skipped on a developer machine without them
but **fail** under ``CI=true`` (:func:`service_missing`): CI must never pass by skipping.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from typing import Any, NoReturn

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from outbox.database import make_engine, normalize_url
from outbox.namespace import DEFAULT_SCHEMA
from worker.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get(
    "CATENTIO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CATENTIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
ANYWHERE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
"""Every address: what test fixtures register endpoints with, past the registration
check, so the send-time SSRF guard can be tested on rows it would refuse."""
# A fixed Fernet key for tests only, so every module that imports it sees the same one.
TEST_KEY = "OSk80ULaPv2qA-P6eOPwolNIvZ13H-ohloVJ6RIHwJU="
# A fixed portal secret for tests only (the API process refuses PostgreSQL without one).
PORTAL_SECRET = "portal-test-secret-0123456789abcdefghijklmnop"


def service_missing(name: str, error: BaseException) -> NoReturn:
    """Skip locally, fail under CI: a missing service must never look like a pass."""
    message = f"{name} is not reachable: {error}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services are required)", pytrace=False)
    pytest.skip(message)


def db_schema_of(database_url: str) -> str:
    """Our schema for a test database URL: the PostgreSQL test's own (its search_path,
    which the ``postgres_url`` fixture sets), the default one on SQLite."""
    options = make_url(str(normalize_url(database_url))).query.get("options", "")
    for option in (options,) if isinstance(options, str) else options:
        if option.startswith("-csearch_path="):
            return option.partition("=")[2]
    return DEFAULT_SCHEMA


def engine_for(database_url: str, **kwargs: Any) -> sa.Engine:
    """``make_engine`` reaching the test's own schema."""
    return make_engine(database_url, schema=db_schema_of(database_url), **kwargs)


def fast_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: loopback allowed, short schedule and timeouts, fixed keys."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "db_schema": db_schema_of(database_url),
        "allowed_networks": LOOPBACK,
        "retry_schedule": (timedelta(milliseconds=100),) * 3,
        "retry_jitter": 0.0,
        "request_timeout": 5.0,
        "connect_timeout": 2.0,
        "poll_interval": 0.02,
        "sweep_interval": 0.5,
        "sweep_after": timedelta(seconds=2),
        "worker_threads": 4,
        "encryption_keys": (TEST_KEY,),
        "portal_secrets": (PORTAL_SECRET,),
    }
    values.update(overrides)
    return Settings(**values)
