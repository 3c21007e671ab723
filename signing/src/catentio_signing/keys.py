"""Secrets and keys: parsing the ``whsec_`` / ``whsk_`` / ``whpk_`` strings, and making new ones.

Three kinds of key appear in Standard Webhooks:

- ``whsec_<base64>``: a shared HMAC-SHA256 secret of 24 to 64 bytes; signs and verifies ``v1``.
- ``whsk_<base64>``: an Ed25519 private key (the 32-byte seed); signs and verifies ``v1a``.
- ``whpk_<base64>``: an Ed25519 public key (32 bytes); verifies ``v1a`` only.

HMAC uses only the standard library. Ed25519 goes through ``cryptography``, imported only
when an Ed25519 key is actually used, so ``pip install catentio-signing`` stays
dependency-free and ``pip install 'catentio-signing[ed25519]'`` adds it.

Example::

    >>> secret = generate_secret()
    >>> secret.startswith("whsec_")
    True
    >>> parse_key(secret).version
    'v1'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from catentio_signing.errors import InvalidKeyError, MissingDependencyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "Ed25519SigningKey",
    "Ed25519VerifyKey",
    "HmacSecret",
    "Key",
    "generate_keypair",
    "generate_secret",
    "parse_key",
    "public_key",
]

SECRET_PREFIX = "whsec_"
SIGNING_KEY_PREFIX = "whsk_"
PUBLIC_KEY_PREFIX = "whpk_"

#: Shortest HMAC secret accepted, in bytes (the Standard Webhooks lower bound).
MIN_SECRET_BYTES = 24
#: Longest HMAC secret accepted, in bytes (the Standard Webhooks upper bound).
MAX_SECRET_BYTES = 64
#: Size of the secrets ``generate_secret`` makes, in bytes.
DEFAULT_SECRET_BYTES = 32

_HMAC_SIGNATURE_BYTES = 32
_ED25519_SIGNATURE_BYTES = 64
_ED25519_KEY_BYTES = 32

_MISSING_EXTRA = (
    "Ed25519 (whsk_/whpk_) keys need the 'cryptography' package; "
    "install it with: pip install 'catentio-signing[ed25519]'"
)


class Key(Protocol):
    """What ``Webhook`` needs from a key: its signature version, and signing/verifying."""

    @property
    def version(self) -> str:
        """The signature version this key produces and checks (``v1`` or ``v1a``)."""
        ...

    @property
    def can_sign(self) -> bool:
        """Whether ``sign`` works (a public key can only verify)."""
        ...

    def sign(self, content: bytes) -> bytes:
        """Return the raw signature of ``content``."""
        ...

    def matches(self, content: bytes, signatures: Iterable[bytes]) -> bool:
        """Return whether any of the raw ``signatures`` is this key's signature of ``content``."""
        ...


class HmacSecret:
    """A shared HMAC-SHA256 secret (``v1``). Its ``repr`` never shows the secret."""

    __slots__ = ("_secret",)
    version = "v1"
    can_sign = True

    def __init__(self, secret: bytes) -> None:
        if not MIN_SECRET_BYTES <= len(secret) <= MAX_SECRET_BYTES:
            raise InvalidKeyError(
                f"an HMAC secret must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, "
                f"got {len(secret)}"
            )
        self._secret = bytes(secret)

    def sign(self, content: bytes) -> bytes:
        """Return HMAC-SHA256 of ``content``."""
        return hmac.digest(self._secret, content, hashlib.sha256)

    def matches(self, content: bytes, signatures: Iterable[bytes]) -> bool:
        """Compare the expected MAC with each candidate in constant time."""
        expected = hmac.digest(self._secret, content, hashlib.sha256)
        # Stopping at the first match leaks nothing secret: which candidate matched is
        # public, only the MAC bytes must not leak through timing.
        return any(hmac.compare_digest(expected, candidate) for candidate in signatures)

    def __repr__(self) -> str:
        return "HmacSecret(<redacted>)"


class Ed25519VerifyKey:
    """An Ed25519 public key (``v1a``): verifies, cannot sign."""

    __slots__ = ("_key", "raw")
    version = "v1a"
    can_sign = False

    def __init__(self, raw: bytes) -> None:
        if len(raw) != _ED25519_KEY_BYTES:
            raise InvalidKeyError(
                f"an Ed25519 public key must be {_ED25519_KEY_BYTES} bytes, got {len(raw)}"
            )
        _, public_class = _ed25519_classes()
        try:
            self._key: Ed25519PublicKey = public_class.from_public_bytes(raw)
        except ValueError as exc:
            raise InvalidKeyError("not a valid Ed25519 public key") from exc
        self.raw = bytes(raw)

    def sign(self, content: bytes) -> bytes:
        """Refuse: a public key cannot produce signatures."""
        raise InvalidKeyError("a whpk_ public key can verify but cannot sign")

    def matches(self, content: bytes, signatures: Iterable[bytes]) -> bool:
        """Return whether any candidate is a valid Ed25519 signature of ``content``."""
        from cryptography.exceptions import InvalidSignature

        for candidate in signatures:
            if len(candidate) != _ED25519_SIGNATURE_BYTES:
                continue
            try:
                self._key.verify(candidate, content)
            except InvalidSignature:
                continue
            return True
        return False

    def __repr__(self) -> str:
        return f"Ed25519VerifyKey({PUBLIC_KEY_PREFIX}{_b64(self.raw)})"


class Ed25519SigningKey:
    """An Ed25519 private key (``v1a``): signs, and verifies with its public half."""

    __slots__ = ("_key", "public")
    version = "v1a"
    can_sign = True

    def __init__(self, raw: bytes) -> None:
        # Accept the 32-byte seed, and the 64-byte seed+public form some libraries emit.
        if len(raw) not in (_ED25519_KEY_BYTES, 2 * _ED25519_KEY_BYTES):
            raise InvalidKeyError(
                f"an Ed25519 signing key must be {_ED25519_KEY_BYTES} bytes "
                f"(or {2 * _ED25519_KEY_BYTES} with its public key), got {len(raw)}"
            )
        private_class, _ = _ed25519_classes()
        self._key: Ed25519PrivateKey = private_class.from_private_bytes(raw[:_ED25519_KEY_BYTES])
        self.public = Ed25519VerifyKey(self._key.public_key().public_bytes_raw())
        if len(raw) > _ED25519_KEY_BYTES and raw[_ED25519_KEY_BYTES:] != self.public.raw:
            raise InvalidKeyError("the public half of this Ed25519 signing key does not match")

    def sign(self, content: bytes) -> bytes:
        """Return the Ed25519 signature of ``content``."""
        return self._key.sign(content)

    def matches(self, content: bytes, signatures: Iterable[bytes]) -> bool:
        """Verify with the public half."""
        return self.public.matches(content, signatures)

    def __repr__(self) -> str:
        return "Ed25519SigningKey(<redacted>)"


def parse_key(key: str | bytes) -> Key:
    """Turn a ``whsec_``/``whsk_``/``whpk_`` string, or raw HMAC secret bytes, into a key.

    Raises ``InvalidKeyError`` for anything else (the message never contains the secret),
    and ``MissingDependencyError`` for Ed25519 keys when ``cryptography`` is not installed.

    >>> parse_key(b"0123456789abcdef01234567").version
    'v1'
    """
    if isinstance(key, bytes | bytearray | memoryview):
        return HmacSecret(bytes(key))
    if not isinstance(key, str):
        raise InvalidKeyError(f"a key must be str or bytes, not {type(key).__name__}")
    text = key.strip()
    if text.startswith(SECRET_PREFIX):
        return HmacSecret(_unb64(text[len(SECRET_PREFIX) :], SECRET_PREFIX))
    if text.startswith(SIGNING_KEY_PREFIX):
        return Ed25519SigningKey(_unb64(text[len(SIGNING_KEY_PREFIX) :], SIGNING_KEY_PREFIX))
    if text.startswith(PUBLIC_KEY_PREFIX):
        return Ed25519VerifyKey(_unb64(text[len(PUBLIC_KEY_PREFIX) :], PUBLIC_KEY_PREFIX))
    raise InvalidKeyError(
        f"a key string must start with {SECRET_PREFIX!r}, {SIGNING_KEY_PREFIX!r} "
        f"or {PUBLIC_KEY_PREFIX!r}"
    )


def generate_secret() -> str:
    """Return a new random HMAC secret, ``whsec_`` + base64 of 32 bytes.

    >>> len(parse_key(generate_secret()).sign(b"x"))
    32
    """
    return SECRET_PREFIX + _b64(secrets.token_bytes(DEFAULT_SECRET_BYTES))


def generate_keypair() -> tuple[str, str]:
    """Return a new Ed25519 ``(whsk_…, whpk_…)`` pair; needs the ``ed25519`` extra.

    Keep the ``whsk_`` key on the sending side; hand the ``whpk_`` key to receivers.
    """
    private_class, _ = _ed25519_classes()
    private = private_class.generate()
    return (
        SIGNING_KEY_PREFIX + _b64(private.private_bytes_raw()),
        PUBLIC_KEY_PREFIX + _b64(private.public_key().public_bytes_raw()),
    )


def public_key(signing_key: str) -> str:
    """Return the ``whpk_`` public key that belongs to a ``whsk_`` signing key."""
    key = parse_key(signing_key)
    if not isinstance(key, Ed25519SigningKey):
        raise InvalidKeyError("only a whsk_ signing key has a public key")
    return PUBLIC_KEY_PREFIX + _b64(key.public.raw)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str, prefix: str) -> bytes:
    # Some tools strip base64 padding; put it back rather than reject the key.
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        # Not chained: the underlying error adds nothing and the input is a secret.
        raise InvalidKeyError(f"the part after {prefix!r} is not valid base64") from None


def _ed25519_classes() -> tuple[type[Ed25519PrivateKey], type[Ed25519PublicKey]]:
    """Import the Ed25519 classes on first use, naming the extra when they are missing."""
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (
            Ed25519PrivateKey,
            Ed25519PublicKey,
        )
    except ImportError as exc:
        raise MissingDependencyError(_MISSING_EXTRA) from exc
    return Ed25519PrivateKey, Ed25519PublicKey
