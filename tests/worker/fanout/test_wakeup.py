"""The poller wakes on commit: LISTEN/NOTIFY on PostgreSQL, in-process on SQLite."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import pytest

from outbox import publish
from outbox.database import make_session_factory
from outbox.migrate import upgrade
from outbox.namespace import namespace_of
from tests.support.services import TEST_KEY, engine_for
from worker.demo.receiver import Receiver
from worker.endpoints.registry import create_endpoint
from worker.endpoints.secretbox import SecretBox
from worker.fanout.poller import Poller
from worker.fanout.wakeup import Wakeup, wake_on_commit
from worker.runtime import Runtime

SLOW_POLL = 30.0  # so that only a wake-up can explain a prompt delivery
PROMPT = 3.0  # the bound a woken delivery must meet (it takes milliseconds when idle)


def conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _publish_elsewhere(url: str, n: int = 1) -> list[str]:
    """Publish through an engine of its own, so no in-process hook can ring."""
    engine = engine_for(url)
    sessions = make_session_factory(engine)
    published = []
    with sessions() as session, session.begin():
        for i in range(n):
            published.append(
                publish(session, workspace_id="ws_a", type="run.succeeded", data={"i": i}).id
            )
    engine.dispose()
    return published


def _listening(runtime: Runtime) -> bool:
    listener = runtime.listener
    return listener is not None and listener.wakeup.listening


@pytest.mark.postgres
def test_notify_wakes_the_poller_with_a_30_second_poll_interval(
    postgres_url: str, make_runtime: Callable[..., Runtime], add_endpoint: Any, receiver: Receiver
) -> None:
    """With the poll interval at 30 s, an event committed by another process is delivered
    within a small bound: only the NOTIFY can have woken the poller."""
    runtime = make_runtime(postgres_url, poll_interval=SLOW_POLL)
    add_endpoint(runtime, receiver=receiver)
    with runtime.running():
        assert wait_until(lambda: _listening(runtime))
        time.sleep(0.5)  # the poll that follows LISTEN is done; the poller sleeps 30 s
        committed = time.monotonic()
        (event_id,) = _publish_elsewhere(postgres_url)
        assert receiver.wait_for(1, timeout=PROMPT)
        latency = time.monotonic() - committed
    assert receiver.received()[0].headers["webhook-id"] == event_id
    assert latency < PROMPT


@pytest.mark.postgres
def test_a_killed_listen_connection_reconnects_and_loses_nothing(
    postgres_url: str, make_runtime: Callable[..., Runtime], add_endpoint: Any, receiver: Receiver
) -> None:
    """pg_terminate_backend on the LISTEN connection: the listener reconnects, and events
    committed while it was down are delivered promptly, still with a 30 s poll interval."""
    runtime = make_runtime(postgres_url, poll_interval=SLOW_POLL)
    add_endpoint(runtime, receiver=receiver)
    with runtime.running():
        assert wait_until(lambda: _listening(runtime))
        listener = runtime.listener
        assert listener is not None
        first_pid = listener.backend_pid
        time.sleep(0.5)
        with psycopg.connect(conninfo(postgres_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [first_pid])
            assert wait_until(lambda: not listener.wakeup.listening, timeout=5)
        published = _publish_elsewhere(postgres_url, n=3)  # while nobody listens
        assert receiver.wait_for(3, timeout=PROMPT + 1)
        assert wait_until(lambda: listener.wakeup.listening)
        assert listener.connections == 2 and listener.backend_pid not in (None, first_pid)
        more = _publish_elsewhere(postgres_url)  # and the new connection hears the next one
        assert receiver.wait_for(4, timeout=PROMPT)
    delivered = {r.headers["webhook-id"] for r in receiver.received()}
    assert delivered == {*published, *more}


@pytest.mark.postgres
def test_python_publish_notifies_only_on_commit(postgres_url: str) -> None:
    """outbox.publish NOTIFYs the schema's channel once per committing transaction, and
    not at all when the transaction rolls back."""
    migrated = postgres_url
    engine = engine_for(migrated)
    upgrade(engine)
    channel = namespace_of(engine).channel
    sessions = make_session_factory(engine)
    with psycopg.connect(conninfo(migrated), autocommit=True) as listener:
        listener.execute(f'LISTEN "{channel}"')
        with sessions() as session, session.begin():
            publish(session, workspace_id="ws_a", type="a.rolled_back", data={})
            session.rollback()
        assert list(listener.notifies(timeout=0.5)) == []
        with sessions() as session, session.begin():
            for _ in range(3):
                publish(session, workspace_id="ws_a", type="a.committed", data={})
        heard = list(listener.notifies(timeout=1.0))
    engine.dispose()
    assert [n.channel for n in heard] == [channel]


def test_in_process_commit_wakes_the_embedded_poller(sqlite_url: str) -> None:
    """SQLite: a publish committed in this process rings the poller's wakeup, so the event
    is fanned out at once although the poller was told to sleep 30 s."""
    engine = engine_for(sqlite_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    dispatched: list[Sequence[str]] = []
    wakeup = Wakeup()
    wakeup.listening = True  # as if nothing could arrive unannounced: the poll sleeps 30 s
    wake_on_commit(engine, wakeup)
    polled = threading.Event()
    poller = Poller(session_factory=sessions, dispatch=dispatched.append)
    original = poller.poll_once

    def poll_once() -> Any:
        result = original()
        polled.set()
        return result

    poller.poll_once = poll_once  # type: ignore[method-assign]
    stop = threading.Event()
    _add_endpoint(sessions)
    thread = threading.Thread(
        target=poller.run, args=(stop,), kwargs={"interval": SLOW_POLL, "wakeup": wakeup}
    )
    thread.start()
    try:
        assert polled.wait(5)
        time.sleep(0.3)  # now asleep for 30 s
        committed = time.monotonic()
        with sessions() as session, session.begin():
            publish(session, workspace_id="ws_a", type="run.succeeded", data={})
        assert wait_until(lambda: bool(dispatched), timeout=PROMPT)
        assert time.monotonic() - committed < PROMPT
    finally:
        stop.set()
        thread.join(5)
        engine.dispose()


def test_while_listening_a_batch_not_full_is_not_followed_by_another_look(
    sqlite_url: str,
) -> None:
    """Listening, every commit rings: after a full batch the poller looks again at
    once, after one that was not full it sleeps until rung (no empty poll per event at
    a low rate), and a commit meanwhile is still fanned out at once."""
    engine = engine_for(sqlite_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    dispatched: list[Sequence[str]] = []
    wakeup = Wakeup()
    wakeup.listening = True
    poller = Poller(session_factory=sessions, dispatch=dispatched.append, batch_size=2)
    original = poller.poll_once
    polls: list[int] = []

    def poll_once() -> Any:
        result = original()
        polls.append(result.events)
        return result

    poller.poll_once = poll_once  # type: ignore[method-assign]
    _add_endpoint(sessions)
    producer = engine_for(sqlite_url)  # another process's commits: they ring nothing here
    with make_session_factory(producer)() as session, session.begin():
        for _ in range(3):
            publish(session, workspace_id="ws_a", type="run.succeeded", data={})
    producer.dispose()
    wake_on_commit(engine, wakeup)
    stop = threading.Event()
    thread = threading.Thread(
        target=poller.run, args=(stop,), kwargs={"interval": SLOW_POLL, "wakeup": wakeup}
    )
    thread.start()
    try:
        assert wait_until(lambda: sum(polls) == 3, timeout=5)
        time.sleep(0.5)
        assert polls == [2, 1]  # full, so again at once; then not full: asleep
        with sessions() as session, session.begin():
            publish(session, workspace_id="ws_a", type="run.succeeded", data={})
        assert wait_until(lambda: sum(polls) == 4, timeout=PROMPT)
        time.sleep(0.3)
        assert polls == [2, 1, 1]
        assert sum(len(d) for d in dispatched) == 4
    finally:
        stop.set()
        thread.join(5)
        engine.dispose()


def _add_endpoint(sessions: Any) -> None:
    with sessions() as session, session.begin():
        create_endpoint(
            session,
            SecretBox([TEST_KEY]),
            workspace_id="ws_a",
            url="https://example.invalid/hook",
            event_types=["*"],
        )


def test_wakeup_sleep_returns_when_rung_or_stopped() -> None:
    """A rung wakeup cuts the sleep short and says so; a stop ends it too; otherwise it
    sleeps the whole time."""
    wakeup, stop = Wakeup(), threading.Event()
    started = time.monotonic()
    assert wakeup.sleep(0.05, stop) is False
    assert time.monotonic() - started >= 0.05
    wakeup.ring()
    assert wakeup.sleep(10, stop) is True
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    assert wakeup.sleep(10, stop) is False
    assert time.monotonic() - started < 1
