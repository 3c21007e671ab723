"""Ed25519 (v1a) keys: round trips, tampering, mixing with HMAC, and the optional extra."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from catentio_signing import (
    InvalidKeyError,
    MissingDependencyError,
    NoMatchingSignatureError,
    Webhook,
    generate_keypair,
    generate_secret,
)
from catentio_signing.keys import parse_key

MakeWebhook = Callable[..., Webhook]
Signed = Callable[..., dict[str, str]]


def test_signing_key_produces_v1a_signatures(signed: Signed, body: bytes) -> None:
    """A whsk_ key signs with a single v1a entry of 64 bytes."""
    signing_key, _ = generate_keypair()
    version, _, signature = signed(body, secret=signing_key)["webhook-signature"].partition(",")
    assert version == "v1a"
    assert len(base64.b64decode(signature)) == 64


def test_public_key_verifies_what_the_signing_key_signs(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """The whpk_ half verifies requests signed with the whsk_ half; so does whsk_ itself."""
    signing_key, verify_key = generate_keypair()
    headers = signed(body, secret=signing_key)
    assert make_webhook(verify_key).verify(body, headers) == json.loads(body)
    assert make_webhook(signing_key).verify(body, headers) == json.loads(body)


def test_v1a_signature_is_plain_ed25519_over_the_signed_content(
    signed: Signed, body: bytes, now: int
) -> None:
    """An independent Ed25519 check over '{id}.{timestamp}.{body}' accepts our signature."""
    signing_key, verify_key = generate_keypair()
    headers = signed(body, secret=signing_key, msg_id="evt_x")
    raw_public = base64.b64decode(verify_key.removeprefix("whpk_"))
    signature = base64.b64decode(headers["webhook-signature"].removeprefix("v1a,"))
    Ed25519PublicKey.from_public_bytes(raw_public).verify(signature, b"evt_x.%d.%s" % (now, body))


def test_tampered_body_fails_ed25519(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """Changing the body after signing makes the v1a signature fail."""
    signing_key, verify_key = generate_keypair()
    headers = signed(body, secret=signing_key)
    with pytest.raises(NoMatchingSignatureError):
        make_webhook(verify_key).verify(body.replace(b"evt_1", b"evt_2"), headers)


def test_flipped_signature_bit_fails_ed25519(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """A single flipped bit in the v1a signature makes it fail."""
    signing_key, verify_key = generate_keypair()
    headers = signed(body, secret=signing_key)
    raw = bytearray(base64.b64decode(headers["webhook-signature"].removeprefix("v1a,")))
    raw[10] ^= 0x01
    headers["webhook-signature"] = "v1a," + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(NoMatchingSignatureError):
        make_webhook(verify_key).verify(body, headers)


def test_another_keypair_does_not_verify(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """A v1a signature from a different key pair is rejected."""
    signing_key, _ = generate_keypair()
    _, other_public = generate_keypair()
    with pytest.raises(NoMatchingSignatureError):
        make_webhook(other_public).verify(body, signed(body, secret=signing_key))


def test_hmac_signature_relabelled_as_v1a_does_not_verify(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, secret: str
) -> None:
    """Versions are not interchangeable: a v1 MAC presented as v1a matches nothing."""
    _, verify_key = generate_keypair()
    header = signed(body, secret=secret)["webhook-signature"].replace("v1,", "v1a,")
    with pytest.raises(NoMatchingSignatureError):
        make_webhook([verify_key, secret]).verify(
            body, signed(body) | {"webhook-signature": header}
        )


def test_mixed_rotation_from_hmac_to_ed25519(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, secret: str
) -> None:
    """Signing with a whsec_ and a whsk_ lists v1 and v1a; a receiver with either accepts."""
    signing_key, verify_key = generate_keypair()
    headers = signed(body, secret=[secret, signing_key])
    versions = [entry.split(",")[0] for entry in headers["webhook-signature"].split(" ")]
    assert versions == ["v1", "v1a"]
    assert make_webhook(secret).verify(body, headers) == json.loads(body)
    assert make_webhook(verify_key).verify(body, headers) == json.loads(body)


def test_public_key_only_webhook_cannot_sign(body: bytes) -> None:
    """A Webhook holding only whpk_ keys refuses to sign, naming the reason."""
    _, verify_key = generate_keypair()
    with pytest.raises(InvalidKeyError, match="whpk_"):
        Webhook(verify_key).sign("evt_1", 1_700_000_000, body)


def test_signing_skips_public_keys_in_a_mixed_list(body: bytes) -> None:
    """With a secret and a public key, only the secret signs."""
    _, verify_key = generate_keypair()
    signature = Webhook([verify_key, generate_secret()]).sign("evt_1", 1_700_000_000, body)
    assert signature.startswith("v1,") and " " not in signature


def test_64_byte_signing_key_form_is_accepted(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """A whsk_ holding seed and public key (64 bytes) works like the 32-byte seed."""
    signing_key, verify_key = generate_keypair()
    seed = base64.b64decode(signing_key.removeprefix("whsk_"))
    public = base64.b64decode(verify_key.removeprefix("whpk_"))
    long_form = "whsk_" + base64.b64encode(seed + public).decode()
    assert make_webhook(verify_key).verify(body, signed(body, secret=long_form)) == json.loads(body)
    wrong = "whsk_" + base64.b64encode(seed + bytes(32)).decode()
    with pytest.raises(InvalidKeyError, match="does not match"):
        parse_key(wrong)


@pytest.mark.parametrize("prefix", ["whsk_", "whpk_"])
def test_ed25519_keys_of_the_wrong_length_are_refused(prefix: str) -> None:
    """Ed25519 keys must decode to 32 bytes (or 64 for whsk_)."""
    with pytest.raises(InvalidKeyError, match="Ed25519"):
        parse_key(prefix + base64.b64encode(bytes(31)).decode())


@pytest.fixture
def without_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make 'cryptography' unimportable, as when the ed25519 extra is not installed."""
    for name in list(sys.modules):
        if name == "cryptography" or name.startswith("cryptography."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)


@pytest.mark.usefixtures("without_cryptography")
def test_missing_extra_is_named_for_signing_keys() -> None:
    """Using a whsk_ key without cryptography raises MissingDependencyError naming the extra."""
    with pytest.raises(MissingDependencyError, match=r"catentio-signing\[ed25519\]"):
        Webhook("whsk_" + base64.b64encode(bytes(32)).decode())


@pytest.mark.usefixtures("without_cryptography")
def test_missing_extra_is_named_for_public_keys_and_generation() -> None:
    """whpk_ keys and generate_keypair also name the extra; it is an ImportError."""
    with pytest.raises(MissingDependencyError, match=r"catentio-signing\[ed25519\]"):
        Webhook("whpk_" + base64.b64encode(bytes(32)).decode())
    with pytest.raises(ImportError, match=r"pip install"):
        generate_keypair()


@pytest.mark.usefixtures("without_cryptography")
def test_hmac_works_without_cryptography(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """HMAC signing and verification need nothing beyond the standard library."""
    assert make_webhook().verify(body, signed(body)) == json.loads(body)
