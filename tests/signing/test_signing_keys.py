"""Secrets and keys: parsing, validation, generation; signing-side argument checks."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from catentio_signing import (
    InvalidKeyError,
    Webhook,
    generate_keypair,
    generate_secret,
    public_key,
    sign_headers,
)
from catentio_signing.keys import HmacSecret, parse_key


def _whsec(raw: bytes) -> str:
    return "whsec_" + base64.b64encode(raw).decode()


def test_generated_secret_is_32_random_bytes() -> None:
    """generate_secret returns whsec_ + base64 of 32 bytes, different every time."""
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


@pytest.mark.parametrize("size", [24, 32, 64])
def test_secrets_of_24_to_64_bytes_are_accepted(size: int) -> None:
    """whsec_ secrets and raw secrets within the spec's length range are usable."""
    assert parse_key(_whsec(b"k" * size)).version == "v1"
    assert parse_key(b"k" * size).version == "v1"


@pytest.mark.parametrize("size", [0, 1, 23, 65, 128])
def test_secrets_outside_24_to_64_bytes_are_refused(size: int) -> None:
    """Too short or too long secrets raise InvalidKeyError, as str or bytes."""
    with pytest.raises(InvalidKeyError, match="24 to 64"):
        parse_key(_whsec(b"k" * size))
    with pytest.raises(InvalidKeyError, match="24 to 64"):
        parse_key(b"k" * size)


def test_unpadded_and_whitespace_wrapped_secrets_are_accepted() -> None:
    """A whsec_ value without its '=' padding or with a trailing newline still parses."""
    raw = b"s" * 25  # 25 bytes -> base64 needs padding
    text = _whsec(raw)
    assert text.endswith("=")
    signature = HmacSecret(raw).sign(b"x")
    assert parse_key(text.rstrip("=")).sign(b"x") == signature
    assert parse_key(f"  {text}\n").sign(b"x") == signature


@pytest.mark.parametrize(
    "key",
    ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec-MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "", "sk_live_x"],
)
def test_strings_without_a_known_prefix_are_refused(key: str) -> None:
    """A key string must start with whsec_, whsk_ or whpk_."""
    with pytest.raises(InvalidKeyError, match="must start with"):
        parse_key(key)


def test_invalid_base64_is_refused_without_echoing_the_secret() -> None:
    """A whsec_ with non-base64 characters is refused; the message does not contain it."""
    secret = "whsec_not*valid*base64*at*all*but*secret"
    with pytest.raises(InvalidKeyError) as info:
        parse_key(secret)
    assert "not valid base64" in str(info.value)
    assert "secret" not in str(info.value).replace("whsec_", "")
    assert info.value.__cause__ is None


def test_non_text_keys_are_refused() -> None:
    """A key that is neither str nor bytes raises InvalidKeyError, alone or in a list."""
    with pytest.raises(InvalidKeyError, match="str or bytes"):
        parse_key(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError, match="str or bytes"):
        Webhook(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError, match="str or bytes"):
        Webhook([generate_secret(), None])  # type: ignore[list-item]


def test_empty_key_list_is_refused() -> None:
    """A Webhook needs at least one key."""
    with pytest.raises(InvalidKeyError, match="at least one"):
        Webhook([])


def test_repr_never_shows_secrets() -> None:
    """repr of a Webhook and its keys does not contain any secret material."""
    secret = generate_secret()
    signing_key, verify_key = generate_keypair()
    text = repr(Webhook([secret, signing_key, verify_key]))
    assert secret.removeprefix("whsec_") not in text
    assert signing_key.removeprefix("whsk_") not in text
    assert "redacted" in text
    assert verify_key in text  # public keys are not secret and help debugging


def test_public_key_is_derived_from_the_signing_key() -> None:
    """public_key(whsk_) returns the whpk_ that generate_keypair paired with it."""
    signing_key, verify_key = generate_keypair()
    assert public_key(signing_key) == verify_key
    with pytest.raises(InvalidKeyError):
        public_key(generate_secret())


def test_sign_accepts_aware_datetimes_as_unix_seconds(secret: str, body: bytes) -> None:
    """An aware datetime signs the same as its (floored) unix seconds, in any timezone."""
    wh = Webhook(secret)
    moment = datetime(2023, 11, 14, 22, 13, 20, 900_000, tzinfo=UTC)
    elsewhere = moment.astimezone(timezone(timedelta(hours=-5)))
    assert wh.sign("evt_1", moment, body) == wh.sign("evt_1", 1_700_000_000, body)
    assert wh.sign("evt_1", elsewhere, body) == wh.sign("evt_1", 1_700_000_000, body)


def test_sign_refuses_naive_datetimes(secret: str, body: bytes) -> None:
    """A naive datetime is ambiguous, so signing refuses it."""
    with pytest.raises(ValueError, match="aware"):
        Webhook(secret).sign("evt_1", datetime(2023, 11, 14), body)


@pytest.mark.parametrize("timestamp", [True, 1.5, "1700000000"])
def test_sign_refuses_non_integer_timestamps(secret: str, body: bytes, timestamp: object) -> None:
    """Booleans, floats and strings are not accepted as timestamps."""
    with pytest.raises(TypeError):
        Webhook(secret).sign("evt_1", timestamp, body)  # type: ignore[arg-type]


@pytest.mark.parametrize("timestamp", [-1, datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)])
def test_sign_refuses_times_before_1970(
    secret: str, body: bytes, timestamp: int | datetime
) -> None:
    """A negative unix time could never verify, so signing refuses it, as int or datetime."""
    with pytest.raises(ValueError, match="1970"):
        Webhook(secret).sign("evt_1", timestamp, body)


@pytest.mark.parametrize("msg_id", ["evt.1", "", "evt 1"])
def test_sign_refuses_ids_receivers_would_reject(secret: str, body: bytes, msg_id: str) -> None:
    """The sender applies the same id rules as the receiver."""
    with pytest.raises(ValueError, match="webhook-id"):
        sign_headers(secret, msg_id=msg_id, timestamp=1_700_000_000, payload=body)


def test_sign_headers_returns_exactly_the_three_headers(secret: str, body: bytes) -> None:
    """sign_headers gives webhook-id, webhook-timestamp (string) and webhook-signature only."""
    headers = sign_headers(secret, msg_id="evt_1", timestamp=1_700_000_000, payload=body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"].startswith("v1,")
