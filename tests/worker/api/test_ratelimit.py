"""Rate limits: headers on every response, 429 + Retry-After, shared through Redis."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from outbox.migrate import upgrade
from tests.support.api import Api, assert_error, listening_port, spawn_logged
from tests.support.services import PORTAL_SECRET, TEST_KEY, db_schema_of, engine_for

HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def test_every_response_carries_the_headers(make_api: Callable[..., Api], sqlite_url: str) -> None:
    """Success, 401, 404, 422 and health all carry X-RateLimit-*."""
    api = make_api(sqlite_url)
    client = api.as_workspace()
    responses = [
        client.get("/v1/webhooks"),
        api.client().get("/v1/webhooks"),
        client.get("/v1/webhooks/ep_00000000000000000000000000"),
        client.post("/v1/webhooks", json={"nope": 1}),
        api.client().get("/v1/system/health"),
    ]
    for response in responses:
        assert all(h in response.headers for h in HEADERS), (response.status_code, response.headers)
    assert responses[0].headers["x-ratelimit-limit"] == "100"
    assert responses[3].headers["x-ratelimit-limit"] == "20"


def test_over_the_limit_is_429_with_retry_after(
    make_api: Callable[..., Api], sqlite_url: str
) -> None:
    """The sixth read in a minute with a 5/minute limit is refused; writes have their own budget."""
    api = make_api(sqlite_url, api_read_limit="5/minute", api_write_limit="2/minute")
    client = api.as_workspace()
    remaining = [int(client.get("/v1/webhooks").headers["x-ratelimit-remaining"]) for _ in range(5)]
    assert remaining == [4, 3, 2, 1, 0]
    refused = client.get("/v1/webhooks")
    assert_error(refused, 429, "RATE_LIMITED")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert int(refused.headers["x-ratelimit-reset"]) >= int(time.time())
    # Writes count separately, and another workspace has its own budget.
    assert client.post("/v1/events", json={"type": "a.b", "data": {}}).status_code == 201
    assert api.as_workspace("ws_b").get("/v1/webhooks").status_code == 200


@pytest.fixture
def api_process(
    postgres_url: str, redis_server: str, redis_namespace: str, tmp_path: Path
) -> Iterator[Callable[[], str]]:
    """Builder: start a `catentio-webhooks api` process on this test's PostgreSQL schema
    and Redis namespace; returns its base URL."""
    engine = engine_for(postgres_url)
    upgrade(engine)
    engine.dispose()
    processes: list[subprocess.Popen[bytes]] = []
    env = {
        **os.environ,
        "DATABASE_URL": postgres_url,
        "CATENTIO_DB_SCHEMA": db_schema_of(postgres_url),
        "REDIS_URL": redis_server,
        "CATENTIO_REDIS_NAMESPACE": redis_namespace,
        "CATENTIO_ENCRYPTION_KEYS": TEST_KEY,
        "CATENTIO_PORTAL_SECRET": PORTAL_SECRET,
        "CATENTIO_API_READ_LIMIT": "6/minute",
        "CATENTIO_LOG_FORMAT": "json",
    }
    env.pop("PORT", None)

    def start() -> str:
        log = tmp_path / f"api{len(processes)}.log"
        process = spawn_logged(["api", "--port", "0"], env, log)
        processes.append(process)
        return f"http://127.0.0.1:{listening_port(process, log)}"

    yield start
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=10)


@pytest.mark.postgres
@pytest.mark.redis
def test_two_api_processes_share_one_budget(
    api_process: Callable[[], str], postgres_url: str
) -> None:
    """Six reads a minute, spread over two processes on one Redis: the seventh is refused
    by whichever process gets it."""
    from sqlalchemy.orm import Session

    from worker.access.keys import create_key

    first, second = api_process(), api_process()
    engine = engine_for(postgres_url)
    with Session(engine) as session, session.begin():
        key = create_key(session, workspace_id="ws_a").key
    engine.dispose()
    headers = {"Authorization": f"Bearer {key}"}
    statuses = []
    with httpx.Client(headers=headers, timeout=10) as client:
        for index in range(7):
            base = first if index % 2 == 0 else second
            statuses.append(client.get(f"{base}/v1/webhooks").status_code)
    assert statuses == [200] * 6 + [429]
