"""The FastAPI dependency, exercised through FastAPI's TestClient."""

# No "from __future__ import annotations": FastAPI must evaluate the endpoint's annotation,
# which refers to a dependency local to the fixture.

import warnings
from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from catentio_signing import Webhook
from catentio_signing.fastapi import webhook_dependency

with warnings.catch_warnings():
    # Starlette 1.x warns once, at import, that its test client prefers the httpx2 fork;
    # plain httpx works. Silence only that warning, only for this import.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

Signed = Callable[..., dict[str, str]]


@pytest.fixture
def client(make_webhook: Callable[..., Webhook]) -> TestClient:
    """A FastAPI app whose webhook route depends on a verified event."""
    app = FastAPI()
    verified_event = webhook_dependency(make_webhook())
    app.state.received = []

    @app.post("/hooks")
    async def hook(event: Annotated[Any, Depends(verified_event)]) -> dict[str, Any]:
        app.state.received.append(event)
        return {"type": event["data"]["type"]}

    return TestClient(app)


def test_verified_request_reaches_the_endpoint_with_the_event(
    client: TestClient, signed: Signed, body: bytes
) -> None:
    """A signed request runs the endpoint with the parsed event."""
    response = client.post("/hooks", content=body, headers=signed(body))
    assert response.status_code == 200
    assert response.json() == {"type": "run.succeeded"}


def test_bad_signature_is_answered_400_without_running_the_endpoint(
    client: TestClient, signed: Signed, body: bytes
) -> None:
    """A tampered body gets 400 with the error code and the endpoint never runs."""
    response = client.post("/hooks", content=body + b" ", headers=signed(body))
    assert response.status_code == 400
    assert response.json()["detail"]["error"] == "no_matching_signature"
    assert client.app.state.received == []  # type: ignore[attr-defined]


def test_missing_headers_are_answered_401(client: TestClient, body: bytes) -> None:
    """A request without webhook headers gets 401 with a JSON error."""
    response = client.post("/hooks", content=body)
    assert response.status_code == 401
    assert response.json()["detail"]["error"] == "missing_header"


def test_stale_timestamp_is_answered_400(
    client: TestClient, signed: Signed, body: bytes, now: int
) -> None:
    """A validly signed but stale request gets 400 timestamp_out_of_tolerance."""
    response = client.post("/hooks", content=body, headers=signed(body, timestamp=now - 3600))
    assert response.status_code == 400
    assert response.json()["detail"]["error"] == "timestamp_out_of_tolerance"
