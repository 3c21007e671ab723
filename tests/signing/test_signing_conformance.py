"""The shared Standard Webhooks vector, and interoperability with other implementations."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
import svix.webhooks

from catentio_signing import (
    NoMatchingSignatureError,
    Webhook,
    generate_keypair,
    generate_secret,
    sign_headers,
)

VECTOR_FILE = (
    Path(__file__).resolve().parents[3] / "shared" / "conformance" / "standard-webhooks-v1.json"
)
# The same vector, embedded so the test still runs where the shared folder is absent.
EMBEDDED_VECTORS = [
    {
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "timestamp": 1614265330,
        "payload": '{"test": 2432232314}',
        "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
]


def _vectors() -> list[dict[str, Any]]:
    if VECTOR_FILE.is_file():
        vectors: list[dict[str, Any]] = json.loads(VECTOR_FILE.read_text("utf-8"))["vectors"]
        return vectors
    return EMBEDDED_VECTORS


VECTORS = _vectors()


def test_embedded_vectors_match_the_shared_file() -> None:
    """The fallback copy of the vector is identical to the shared conformance file."""
    if VECTOR_FILE.is_file():
        assert json.loads(VECTOR_FILE.read_text("utf-8"))["vectors"][:1] == EMBEDDED_VECTORS
    assert VECTORS


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["msg_id"])
def test_sign_reproduces_the_vector_signature(vector: dict[str, Any]) -> None:
    """Signing the vector's id, timestamp and payload gives exactly its signature."""
    wh = Webhook(vector["secret"])
    signature = wh.sign(vector["msg_id"], vector["timestamp"], vector["payload"])
    assert signature == vector["signature"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["msg_id"])
def test_verify_accepts_the_vector(vector: dict[str, Any]) -> None:
    """The vector's request verifies at its own timestamp and yields the parsed payload."""
    wh = Webhook(vector["secret"], clock=lambda: vector["timestamp"])
    headers = {
        "webhook-id": vector["msg_id"],
        "webhook-timestamp": str(vector["timestamp"]),
        "webhook-signature": vector["signature"],
    }
    assert wh.verify(vector["payload"].encode(), headers) == json.loads(vector["payload"])


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["msg_id"])
def test_verify_rejects_the_vector_with_a_changed_payload(vector: dict[str, Any]) -> None:
    """One changed byte in the vector's payload makes it fail."""
    wh = Webhook(vector["secret"], clock=lambda: vector["timestamp"])
    headers = {
        "webhook-id": vector["msg_id"],
        "webhook-timestamp": str(vector["timestamp"]),
        "webhook-signature": vector["signature"],
    }
    tampered = vector["payload"].replace("2", "3", 1).encode()
    with pytest.raises(NoMatchingSignatureError):
        wh.verify(tampered, headers)


def test_we_verify_what_standardwebhooks_signs(body: bytes) -> None:
    """A signature made by the standardwebhooks reference library verifies here."""
    secret = generate_secret()
    now = datetime.now(tz=UTC)
    signature = standardwebhooks.Webhook(secret).sign("msg_ref", now, body.decode())
    headers = {
        "webhook-id": "msg_ref",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    assert Webhook(secret).verify(body, headers) == json.loads(body)


def test_standardwebhooks_verifies_what_we_sign(
    body: bytes, signed_now: Callable[..., dict[str, str]]
) -> None:
    """The standardwebhooks reference library accepts our headers and body."""
    secret = generate_secret()
    headers = signed_now(body, secret=secret)
    assert standardwebhooks.Webhook(secret).verify(body, headers) == json.loads(body)


def test_standardwebhooks_rejects_our_signature_under_another_secret(
    body: bytes, signed_now: Callable[..., dict[str, str]]
) -> None:
    """The interop check is real: the reference library refuses a wrong secret."""
    headers = signed_now(body, secret=generate_secret())
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(generate_secret()).verify(body, headers)


def test_standardwebhooks_accepts_our_rotation_header_with_an_ed25519_entry(body: bytes) -> None:
    """A header listing v1 and v1a signatures still verifies with the HMAC-only reference."""
    secret = generate_secret()
    signing_key, _ = generate_keypair()
    headers = sign_headers(
        [signing_key, secret], msg_id="evt_mixed", timestamp=int(time.time()), payload=body
    )
    assert headers["webhook-signature"].startswith("v1a,")
    assert standardwebhooks.Webhook(secret).verify(body, headers) == json.loads(body)


def test_we_verify_what_svix_signs(body: bytes) -> None:
    """A signature made by the svix library verifies here."""
    secret = generate_secret()
    now = datetime.now(tz=UTC)
    signature = svix.webhooks.Webhook(secret).sign("msg_svix", now, body.decode())
    headers = {
        "Webhook-Id": "msg_svix",
        "Webhook-Timestamp": str(int(now.timestamp())),
        "Webhook-Signature": signature,
    }
    assert Webhook(secret).verify(body, headers) == json.loads(body)


def test_svix_verifies_what_we_sign(body: bytes, signed_now: Callable[..., dict[str, str]]) -> None:
    """The svix library accepts our headers and body (it raises on failure)."""
    secret = generate_secret()
    headers = signed_now(body, secret=secret)
    svix.webhooks.Webhook(secret).verify(body, headers)
    with pytest.raises(svix.webhooks.WebhookVerificationError):
        svix.webhooks.Webhook(secret).verify(body + b" ", headers)
