"""Nothing stranded: bad limits and header values are refused at the input, and any
unexpected error after a won claim is recorded as an ``internal`` attempt that takes
the normal retry/exhaustion path instead of leaving the row pending forever.

These run through the real runtime (worker threads and poller) and a real receiver, so
they hold whatever the delivery engine looks like inside.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update

from outbox import Attempt, Delivery, DeliveryStatus, Endpoint, publish
from outbox.errors import ValidationError
from tests.support.cli import cli_env, run_cli
from worker.demo.receiver import Receiver
from worker.endpoints.registry import NewSecret
from worker.errors import ConfigurationError
from worker.runtime import Runtime
from worker.settings import Settings


def _wait_finished(runtime: Runtime, timeout: float = 20.0) -> list[Delivery]:
    """Every delivery, once none is pending (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        with runtime.sessions() as session:
            rows = list(session.scalars(select(Delivery).order_by(Delivery.id)))
        if rows and all(r.status != DeliveryStatus.PENDING for r in rows):
            return rows
        if time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def _attempts(runtime: Runtime, delivery_id: str) -> list[Attempt]:
    with runtime.sessions() as session:
        query = select(Attempt).where(Attempt.delivery_id == delivery_id)
        return list(session.scalars(query.order_by(Attempt.number)))


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e400"])
def test_non_finite_rate_limits_are_refused_at_every_input(
    value: str, migrated: str, make_runtime: Callable[..., Runtime], add_endpoint: Any
) -> None:
    """inf/nan as a rate limit: refused by settings, `endpoints add`, `endpoints update`
    and the domain function, each with a clear message; nothing is written."""
    with pytest.raises(ConfigurationError, match="CATENTIO_RATE_LIMIT"):
        Settings.from_env({"CATENTIO_RATE_LIMIT": value})
    runtime = make_runtime(migrated)
    with pytest.raises(ValidationError, match="rate limit"):
        add_endpoint(runtime, rate_limit=float(value))
    env = cli_env(migrated)
    added = run_cli(
        env, "endpoints", "add", "--workspace", "ws_a", "--url", "https://example.com/h",
        "--events", "*", "--rate-limit", value,
    )  # fmt: skip
    assert added.exit_code == 2, added.output
    assert added.stderr.startswith("error: ") and "rate" in added.stderr
    assert len(added.stderr.strip().splitlines()) == 1
    with runtime.sessions() as session:
        assert session.scalars(select(Endpoint)).all() == []
    endpoint = add_endpoint(runtime).endpoint
    updated = run_cli(env, "endpoints", "update", endpoint.id, "--rate-limit", value)
    assert updated.exit_code == 2, updated.output
    assert "rate" in updated.stderr
    with runtime.sessions() as session:
        assert session.get_one(Endpoint, endpoint.id).rate_limit is None


@pytest.mark.parametrize("value", ["café", "naïve ☃", "x\u200by"])
def test_non_ascii_header_values_are_refused_at_registration(
    value: str, migrated: str, make_runtime: Callable[..., Runtime], add_endpoint: Any
) -> None:
    """A custom header value with a non-ASCII character is refused by `endpoints add`
    and `update` (exit 2, one line) instead of crashing every attempt later."""
    runtime = make_runtime(migrated)
    with pytest.raises(ValidationError, match="printable ASCII"):
        add_endpoint(runtime, headers={"x-team": value})
    env = cli_env(migrated)
    added = run_cli(
        env, "endpoints", "add", "--workspace", "ws_a", "--url", "https://example.com/h",
        "--events", "*", "--header", f"X-Team: {value}",
    )  # fmt: skip
    assert added.exit_code == 2, added.output
    assert "printable ASCII" in added.stderr
    endpoint = add_endpoint(runtime).endpoint
    updated = run_cli(env, "endpoints", "update", endpoint.id, "--header", f"X-Team: {value}")
    assert updated.exit_code == 2 and "printable ASCII" in updated.stderr
    with runtime.sessions() as session:
        assert session.get_one(Endpoint, endpoint.id).headers == {}


def _break_endpoint(runtime: Runtime, endpoint_id: str, **values: Any) -> None:
    """Edit the endpoint's row by hand, past every input check (as SQL would)."""
    with runtime.sessions() as session, session.begin():
        session.execute(update(Endpoint).where(Endpoint.id == endpoint_id).values(**values))


@pytest.mark.parametrize(
    "broken",
    [
        {"rate_limit": float("inf")},
        {"headers": {"x-team": "café"}},
        {"secrets": [{"secret": "not-a-fernet-token", "expires_at": None}]},
    ],
    ids=["rate-inf", "header-non-ascii", "secret-unreadable"],
)
def test_an_unexpected_error_after_the_claim_is_an_internal_attempt(
    broken: dict[str, Any],
    database_url: str,
    make_runtime: Callable[..., Runtime],
    add_endpoint: Callable[..., NewSecret],
    receiver: Receiver,
) -> None:
    """A row edited into something the attempt cannot use: every try is recorded as an
    attempt with error kind ``internal``, the schedule runs, and the delivery ends
    ``failed`` (it is not left pending, nor re-rung into the same crash forever). A
    healthy endpoint beside it is not affected."""
    runtime = make_runtime(database_url)
    bad = add_endpoint(runtime, receiver=receiver, path="/bad").endpoint
    good = add_endpoint(runtime, receiver=receiver, path="/good").endpoint
    _break_endpoint(runtime, bad.id, **broken)
    with runtime.sessions() as session, session.begin():
        publish(session, workspace_id="ws_a", type="run.succeeded", data={"n": 1})
    with runtime.running():
        rows = _wait_finished(runtime)
    by_endpoint = {r.endpoint_id: r for r in rows}
    assert by_endpoint[good.id].status == DeliveryStatus.SUCCEEDED
    stuck = by_endpoint[bad.id]
    assert stuck.status == DeliveryStatus.FAILED, (stuck.status, stuck.attempt_count)
    attempts = _attempts(runtime, stuck.id)
    assert len(attempts) == runtime.settings.max_attempts
    assert {a.error_kind for a in attempts} == {"internal"}
    assert attempts[-1].outcome == "exhausted"
    assert stuck.last_error_kind == "internal"
    assert receiver.received("/bad") == []
