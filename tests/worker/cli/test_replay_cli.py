"""Replay from the command line: one delivery, an event, and thousands after an outage.

Replay re-opens the same delivery rows, so the receiver sees the same webhook-id, the
attempt numbers continue, and a second identical replay sends nothing extra.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from outbox import publish
from outbox.database import make_engine, make_session_factory
from outbox.models import Attempt, Delivery, DeliveryStatus
from tests.support.cli import Invoke, cli_env, run_cli
from tests.support.history import History
from tests.support.waiting import wait_until
from worker.demo.receiver import Reply


def _rows(url: str, **where: Any) -> list[Delivery]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            query = select(Delivery).filter_by(**where).order_by(Delivery.id)
            return list(session.scalars(query))
    finally:
        engine.dispose()


def ours(received: list[Any], event_id: str) -> list[Any]:
    """The requests that carried ``event_id`` (the endpoint also gets operational events,
    such as the one saying this delivery was exhausted)."""
    return [r for r in received if r.headers["webhook-id"] == event_id]


def test_replaying_a_delivery_twice_sends_one_new_attempt(
    backend: dict[str, Any], make_runtime: Any, add_endpoint: Any, receiver: Any
) -> None:
    """A delivery that failed through an outage, replayed twice once the receiver is back,
    reaches it exactly once more: same webhook-id, attempt 5, trigger "replay"."""
    runtime = make_runtime(**backend, sweep_after=timedelta(milliseconds=200), sweep_interval=0.1)
    outage = {"down": True}
    add_endpoint(
        runtime,
        receiver=receiver,
        behaviour=lambda _n: Reply(503 if outage["down"] else 200),
    )
    with runtime.sessions() as session, session.begin():
        event = publish(session, workspace_id="ws_a", type="run.succeeded", data={"run": 1})
    runtime.poller().poll_once()
    [delivery] = _rows(backend["database_url"], event_id=event.id)
    # The outage: every scheduled attempt fails until the schedule is spent.
    assert wait_until(
        lambda: (
            runtime.deliverer.deliver(delivery.id) is not None
            and _rows(backend["database_url"], id=delivery.id)[0].status == DeliveryStatus.FAILED
        )
    )
    assert len(ours(receiver.received("/hook"), event.id)) == 4

    outage["down"] = False
    env = cli_env(
        backend["database_url"],
        REDIS_URL=backend.get("redis_url", ""),
        CATENTIO_REDIS_NAMESPACE=backend.get("redis_namespace", "catentio"),
    )
    first = run_cli(env, "replay", "delivery", delivery.id, "--json")
    second = run_cli(env, "replay", "delivery", delivery.id, "--json")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert json.loads(first.stdout)["reopened"] is True
    assert json.loads(first.stdout)["rung"] is ("redis_url" in backend)
    assert json.loads(second.stdout)["reopened"] is False

    with runtime.running():
        assert wait_until(
            lambda: (
                _rows(backend["database_url"], id=delivery.id)[0].status == DeliveryStatus.SUCCEEDED
            )
        )
        time.sleep(0.5)  # a second request, if there were one, would arrive now
    got = ours(receiver.received("/hook"), event.id)
    assert len(got) == 5
    assert got[-1].headers["x-catentio-attempt"] == "5" and got[-1].verified
    engine = make_engine(backend["database_url"])
    with make_session_factory(engine)() as session:
        attempts = list(
            session.scalars(
                select(Attempt).where(Attempt.delivery_id == delivery.id).order_by(Attempt.number)
            )
        )
    engine.dispose()
    assert [(a.number, a.trigger, a.response_status) for a in attempts][-2:] == [
        (4, "scheduled", 503),
        (5, "replay", 200),
    ]


def _event_with(history: History, statuses: set[str]) -> str:
    for event in reversed(history.events):
        got = {d["status"] for d in history.deliveries if d["event_id"] == event["id"]}
        if event["workspace_id"] == "ws_a" and event["type"].startswith("run.") and got == statuses:
            return str(event["id"])
    raise AssertionError(f"no seeded event with deliveries {statuses}")


def test_replay_event_reopens_its_deliveries_once(history: History, cli: Invoke) -> None:
    """`replay event` re-opens each finished delivery of the event; run again, it finds
    them pending and changes nothing."""
    event_id = _event_with(history, {"failed", "succeeded"})
    first = cli("replay", "event", event_id, "--json")
    assert first.exit_code == 0, first.output
    outcome = json.loads(first.stdout)
    assert len(outcome["reopened"]) == 2 and outcome["already_pending"] == []
    again = json.loads(cli("replay", "event", event_id, "--json").stdout)
    assert again["reopened"] == [] and sorted(again["already_pending"]) == outcome["reopened"]
    rows = _rows(history.url, event_id=event_id)
    assert {(d.status, d.next_trigger, d.cycle_attempts) for d in rows} == {
        ("pending", "replay", 0)
    }
    assert all(d.completed_at is None and d.lease_until is None for d in rows)


def test_replay_event_to_current_subscribers(history: History, cli: Invoke) -> None:
    """--current-subscribers sends to today's matching endpoints: a new subscriber gets a
    new delivery, an endpoint that no longer matches is left out."""
    event_id = _event_with(history, {"succeeded"})
    added = cli(
        "endpoints", "add", "--workspace", "ws_a", "--url", "https://a3.example/h",
        "--events", "run.*", "--json",
    )  # fmt: skip
    a3 = json.loads(added.stdout)["id"]
    updated = cli("endpoints", "update", history.endpoints["a2"], "--events", "project.*")
    assert updated.exit_code == 0, updated.output
    result = cli("replay", "event", event_id, "--current-subscribers", "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    by_endpoint = {d.endpoint_id: d for d in _rows(history.url, event_id=event_id)}
    assert outcome["reopened"] == [by_endpoint[history.endpoints["a1"]].id]
    assert outcome["created"] == [by_endpoint[a3].id]
    assert outcome["unsubscribed"] == [by_endpoint[history.endpoints["a2"]].id]
    assert by_endpoint[a3].status == "pending" and by_endpoint[a3].next_trigger == "replay"
    assert by_endpoint[history.endpoints["a2"]].status == "succeeded"


def test_replay_to_a_disabled_endpoint_is_refused_until_it_is_enabled(
    history: History, cli: Invoke
) -> None:
    """Replaying to a disabled endpoint says to enable it first; enabling it replays
    what was skipped meanwhile when asked to."""
    a1 = history.endpoints["a1"]
    failed = history.select(endpoint_id=a1, status="failed")[0]["id"]
    assert cli("endpoints", "disable", a1, "--reason", "receiver migrating").exit_code == 0
    refused = cli("replay", "delivery", failed)
    assert refused.exit_code == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: endpoint {a1} is disabled (receiver migrating); "
        f"enable it first: catentio-webhooks endpoints enable {a1}"
    ]
    bulk = cli("replay", "--endpoint", a1, "--yes")
    assert bulk.exit_code == 2 and "enable it first" in bulk.stderr
    assert _rows(history.url, id=failed)[0].status == "failed"

    hint = cli("endpoints", "enable", a1)
    skipped = len(history.select(endpoint_id=a1, status="skipped"))
    assert hint.exit_code == 0 and f"{skipped} deliveries were skipped" in hint.stdout
    cli("endpoints", "disable", a1)
    enabled = cli("endpoints", "enable", a1, "--replay-skipped", "--yes")
    assert enabled.exit_code == 0, enabled.output
    assert f"re-opened {skipped} of {skipped} skipped deliveries" in enabled.stdout
    rows = _rows(history.url, endpoint_id=a1, next_trigger="replay")
    assert len(rows) == skipped and {d.status for d in rows} == {"pending"}


def test_bulk_dry_run_counts_and_samples_without_changing_anything(
    history: History, cli: Invoke
) -> None:
    """--dry-run reports how many would be replayed and the newest of them; nothing moves."""
    a2 = history.endpoints["a2"]
    expected = [
        d
        for d in history.select(endpoint_id=a2, status=("failed", "skipped"))
        if d["created_at"] >= history.now - timedelta(hours=12, minutes=1)
    ]
    result = cli("replay", "--endpoint", a2, "--since", "12h1m", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["matched"] == len(expected)
    assert [s["id"] for s in plan["sample"]] == [d["id"] for d in expected[:10]]
    assert not _rows(history.url, endpoint_id=a2, next_trigger="replay")
    declined = cli("replay", "--endpoint", a2, "--since", "12h1m", input="n\n")
    assert declined.exit_code == 1 and "Replay" in declined.output
    assert not _rows(history.url, endpoint_id=a2, next_trigger="replay")


def test_bulk_replay_paces_itself_and_a_rerun_finds_nothing_left(
    history: History, cli: Invoke
) -> None:
    """--rate spreads the work out; the same replay run again re-opens nothing."""
    b1 = history.endpoints["b1"]
    total = len(history.select(endpoint_id=b1, status=("failed", "skipped")))
    started = time.monotonic()
    result = cli("replay", "--endpoint", b1, "--yes", "--rate", "400/s", "--json")
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reopened"] == total
    assert elapsed >= (total - 400) / 400
    rerun = json.loads(cli("replay", "--endpoint", b1, "--yes", "--json").stdout)
    assert rerun["matched"] == 0


@pytest.mark.slow
def test_bulk_replay_interrupted_halfway_resumes_safely(history: History) -> None:
    """Ctrl-C stops a bulk replay between batches with exit 130; running it again
    re-opens only the rest, and nothing is re-opened twice."""
    a1 = history.endpoints["a1"]
    wanted = history.select(endpoint_id=a1, status="failed")
    env = {**os.environ, **cli_env(history.url)}
    command = [
        sys.executable,
        "-c",
        "import sys; from worker.cli import main; sys.exit(main())",
        "replay",
        "--endpoint",
        a1,
        "--status",
        "failed",
        "--yes",
        "--rate",
        "100/s",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_until(lambda: len(_rows(history.url, endpoint_id=a1, status="pending",
                                       next_trigger="replay")) >= 30)  # fmt: skip
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    first = {d.id: d.rung_at for d in _rows(history.url, endpoint_id=a1, next_trigger="replay")}
    assert 30 <= len(first) < len(wanted)
    assert "interrupted:" in stderr and "run the same command again" in stderr

    resumed = run_cli(cli_env(history.url), *command[3:], "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["reopened"] == len(wanted) - len(first)
    after = {d.id: d for d in _rows(history.url, endpoint_id=a1, next_trigger="replay")}
    assert sorted(after) == sorted(d["id"] for d in wanted)
    assert all(after[i].rung_at == rung for i, rung in first.items())
    assert {d.status for d in after.values()} == {"pending"}


def test_broker_unreachable_leaves_the_rows_for_the_sweeper(history: History, cli: Invoke) -> None:
    """With the broker down the replay still re-opens the row, and says the sweeper
    will ring it."""
    failed = history.select(status="failed")[0]["id"]
    result = cli("replay", "delivery", failed, REDIS_URL="redis://127.0.0.1:1/0")
    assert result.exit_code == 0, result.output
    assert "broker unreachable" in result.stdout and "sweeper" in result.stdout
    [row] = _rows(history.url, id=failed)
    assert row.status == "pending" and row.next_trigger == "replay"
    engine = make_engine(history.url)
    with make_session_factory(engine)() as session:
        count = session.scalar(select(func.count()).where(Attempt.delivery_id == failed))
    engine.dispose()
    assert count == 2


def test_single_and_event_dry_runs_change_nothing(history: History, cli: Invoke) -> None:
    """`replay delivery/event --dry-run` say what they would re-open and leave every row
    as it was."""
    failed = history.select(endpoint_id=history.endpoints["a1"], status="failed")[0]
    one = cli("replay", "delivery", failed["id"], "--dry-run")
    assert one.exit_code == 0, one.output
    assert one.stdout.splitlines() == [
        f"would re-open {failed['id']} to https://a1.example/hook",
        "dry run: nothing changed",
    ]
    event = cli("replay", "event", failed["event_id"], "--dry-run", "--json")
    assert event.exit_code == 0, event.output
    assert failed["id"] in json.loads(event.stdout)["reopened"]
    rows = _rows(history.url, event_id=failed["event_id"])
    assert {d.id: d.status for d in rows} == {
        d["id"]: d["status"] for d in history.deliveries if d["event_id"] == failed["event_id"]
    }
    assert all(d.next_trigger == "scheduled" for d in rows)


def test_interrupting_a_succeeded_replay_says_how_to_resume_without_doubles(
    history: History,
) -> None:
    """Ctrl-C during a `--status succeeded` replay: running it unchanged would replay
    the re-opened ones again once they succeed, so the hint gives a --since that
    continues after the last one re-opened instead of "run it again"."""
    a1 = history.endpoints["a1"]
    env = {**os.environ, **cli_env(history.url)}
    command = [
        sys.executable, "-c", "import sys; from worker.cli import main; sys.exit(main())",
        "replay", "--endpoint", a1, "--status", "succeeded", "--yes", "--rate", "100/s",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_until(lambda: len(_rows(history.url, endpoint_id=a1, status="pending",
                                       next_trigger="replay")) >= 30)  # fmt: skip
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted:" in stderr
    assert "run the same command again" not in stderr
    assert "--since 20" in stderr
