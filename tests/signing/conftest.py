"""Fixtures for the catentio_signing tests: fixed clock, known secrets, signed requests."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from catentio_signing import Webhook, sign_headers

#: The fixed "now" most tests run at (unix seconds).
NOW = 1_700_000_000
#: An HMAC secret of 32 bytes; any valid whsec_ works.
SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
OTHER_SECRET = "whsec_" + "emFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6MDEyMzQ="
BODY = b'{"data":{"id":"evt_1","type":"run.succeeded"},"error":null}'


@pytest.fixture
def now() -> int:
    """The fixed clock value the webhook under test sees."""
    return NOW


@pytest.fixture
def secret() -> str:
    """A valid whsec_ secret."""
    return SECRET


@pytest.fixture
def other_secret() -> str:
    """A second, different whsec_ secret."""
    return OTHER_SECRET


@pytest.fixture
def body() -> bytes:
    """A small JSON body like the ones the worker sends."""
    return BODY


@pytest.fixture
def make_webhook() -> Callable[..., Webhook]:
    """Build a Webhook whose clock is fixed at NOW unless told otherwise."""

    def build(
        secret: str | bytes | Sequence[str | bytes] = SECRET,
        *,
        now: float = NOW,
        **kwargs: Any,
    ) -> Webhook:
        return Webhook(secret, clock=lambda: now, **kwargs)

    return build


@pytest.fixture
def signed() -> Callable[..., dict[str, str]]:
    """Return the three signature headers for a body, signed at NOW by default."""

    def build(
        payload: bytes | str = BODY,
        *,
        secret: str | bytes | Sequence[str | bytes] = SECRET,
        msg_id: str = "evt_1",
        timestamp: int = NOW,
    ) -> dict[str, str]:
        return sign_headers(secret, msg_id=msg_id, timestamp=timestamp, payload=payload)

    return build


@pytest.fixture
def signed_now() -> Callable[..., dict[str, str]]:
    """Return signature headers stamped with the real clock, for libraries that read it."""

    def build(payload: bytes | str = BODY, *, secret: str = SECRET) -> dict[str, str]:
        return sign_headers(secret, msg_id="evt_now", timestamp=int(time.time()), payload=payload)

    return build
