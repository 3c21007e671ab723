"""``GET /v1/system/health`` (no key needed) and ``GET /v1/system/info``."""

from __future__ import annotations

from importlib.metadata import version

import redis
from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import Response

from worker.api.access import context_of
from worker.api.envelope import Envelope, data_body, json_response, wire
from worker.api.schemas.system import Check, Info, SystemHealth

router = APIRouter(prefix="/v1/system", tags=["system"])


def _database(request: Request) -> Check:
    try:
        with context_of(request).engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means: not reachable
        return Check(ok=False, detail=type(exc).__name__)
    return Check(ok=True)


def _broker(request: Request) -> Check:
    settings = context_of(request).settings
    if not settings.redis_url:
        return Check(ok=True, detail="in-process")
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return Check(ok=False, detail=type(exc).__name__)
    finally:
        client.close()
    return Check(ok=True, detail="redis")


@router.get(
    "/health",
    response_model=Envelope[SystemHealth],
    responses={503: {"model": Envelope[SystemHealth], "description": "Something is down."}},
    summary="Are the database and the broker reachable?",
)
def health(request: Request) -> Response:
    """200 when the database and the broker answer, 503 naming which does not."""
    database, broker = _database(request), _broker(request)
    ok = database.ok and broker.ok
    body = SystemHealth(status="ok" if ok else "unavailable", database=database, broker=broker)
    context = context_of(request)
    envelope = data_body(wire(body), request_id=request.state.request_id, now=context.clock())
    return json_response(envelope, 200 if ok else 503)


@router.get("/info", response_model=Envelope[Info], summary="Version")
def info(request: Request) -> Response:
    """The product and its version."""
    body = Info(name="catentio-webhooks", version=version("catentio-webhooks"), api_version="v1")
    context = context_of(request)
    envelope = data_body(wire(body), request_id=request.state.request_id, now=context.clock())
    return json_response(envelope, 200)
