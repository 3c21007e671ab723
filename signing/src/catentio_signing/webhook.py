"""``Webhook``: sign and verify Standard Webhooks requests with one or more keys.

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` over the exact body
bytes. ``v1`` is HMAC-SHA256 with a ``whsec_`` secret; ``v1a`` is Ed25519 with a
``whsk_`` signing key (verifiable with its ``whpk_`` public key).

Receiving::

    wh = Webhook(os.environ["CATENTIO_WEBHOOK_SECRET"])
    event = wh.verify(request_body_bytes, request_headers)   # or WebhookVerificationError

Sending::

    headers = sign_headers(secret, msg_id="evt_1", timestamp=int(time.time()), payload=body)
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn

from catentio_signing.errors import (
    InvalidKeyError,
    InvalidPayloadError,
    MalformedHeaderError,
    NoMatchingSignatureError,
    ReplayedMessageError,
    TimestampOutOfToleranceError,
)
from catentio_signing.headers import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    HeaderSource,
    check_msg_id,
    parse_signatures,
    parse_timestamp,
    read_headers,
)
from catentio_signing.keys import Key, parse_key
from catentio_signing.replay import SeenStore

__all__ = ["DEFAULT_TOLERANCE", "Secret", "Webhook", "sign_headers"]

#: Seconds a request's timestamp may differ from the receiver's clock, either way. Five
#: minutes is the Standard Webhooks recommendation: enough for clock skew, short enough
#: that a captured request soon stops being accepted.
DEFAULT_TOLERANCE = 300

#: One key as accepted by ``Webhook``: a ``whsec_``/``whsk_``/``whpk_`` string, or raw HMAC
#: secret bytes.
Secret = str | bytes


class Webhook:
    """Verifies (and, given a secret or signing key, signs) Standard Webhooks requests.

    ``secret`` is one key or a sequence of keys; during a rotation list every key still in
    use: a request is accepted if any of its signatures matches any key, and ``sign``
    signs with every key that can sign. ``tolerance`` (seconds or a ``timedelta``) bounds
    how far ``webhook-timestamp`` may be from now. ``seen`` enables replay protection (see
    ``catentio_signing.replay``). ``clock`` returns unix seconds; tests inject it.

    >>> wh = Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", clock=lambda: 1614265330)
    >>> headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
    ...            "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    >>> wh.verify(b'{"test": 2432232314}', headers)
    {'test': 2432232314}
    """

    __slots__ = ("_clock", "_keys", "_seen", "_tolerance")

    def __init__(
        self,
        secret: Secret | Sequence[Secret],
        *,
        tolerance: float | timedelta = DEFAULT_TOLERANCE,
        seen: SeenStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(secret, str | bytes | bytearray) or not isinstance(secret, Iterable):
            secrets: list[Secret] = [secret]  # parse_key explains what a key must be
        else:
            secrets = list(secret)
        if not secrets:
            raise InvalidKeyError("at least one secret or key is required")
        self._keys: tuple[Key, ...] = tuple(parse_key(item) for item in secrets)
        seconds = tolerance.total_seconds() if isinstance(tolerance, timedelta) else tolerance
        if not seconds >= 0:  # also refuses NaN, which would make every timestamp acceptable
            raise ValueError("tolerance must be a non-negative number of seconds")
        self._tolerance = float(seconds)
        self._seen = seen
        self._clock = clock

    @property
    def tolerance(self) -> float:
        """The accepted clock difference, in seconds."""
        return self._tolerance

    def sign(self, msg_id: str, timestamp: int | datetime, payload: bytes | str) -> str:
        """Return the ``webhook-signature`` value: one ``version,base64`` per signing key.

        ``timestamp`` is unix seconds or an aware ``datetime``; ``payload`` is the exact body.
        Raises ``ValueError`` for an invalid id or timestamp and ``InvalidKeyError`` when no
        key can sign (only ``whpk_`` public keys).
        """
        signers = [key for key in self._keys if key.can_sign]
        if not signers:
            raise InvalidKeyError("no key can sign: whpk_ public keys only verify")
        content = _signed_content(_sender_msg_id(msg_id), str(_unix_seconds(timestamp)), payload)
        return " ".join(
            f"{key.version},{base64.b64encode(key.sign(content)).decode('ascii')}"
            for key in signers
        )

    def verify(self, payload: bytes | str, headers: HeaderSource) -> Any:
        """Check a received request and return its parsed JSON body.

        ``payload`` is the raw body, exactly as received; ``headers`` is any mapping of
        header names (any case) to values, including framework header objects. Every
        problem raises a ``WebhookVerificationError`` subclass and nothing else.
        """
        msg_id, timestamp_text, signature_header = read_headers(headers)
        check_msg_id(msg_id)
        timestamp = parse_timestamp(timestamp_text)
        now = self._clock()
        if abs(now - timestamp) > self._tolerance:
            raise TimestampOutOfToleranceError(
                f"{TIMESTAMP_HEADER} is {'behind' if timestamp < now else 'ahead of'} the "
                f"receiver's clock by more than {self._tolerance:g} seconds"
            )
        body = _received_body(payload)
        candidates = parse_signatures(signature_header)
        content = b"%s.%s.%s" % (msg_id.encode("ascii"), timestamp_text.encode("ascii"), body)
        if not self._matches(content, candidates):
            raise NoMatchingSignatureError(f"no signature in {SIGNATURE_HEADER} matches")
        if self._seen is not None and not self._seen.add(
            f"{msg_id}.{timestamp_text}", ttl=2 * self._tolerance
        ):
            raise ReplayedMessageError(f"this {ID_HEADER} and timestamp were already accepted")
        return _parse_json(body)

    def _matches(self, content: bytes, candidates: dict[str, list[str]]) -> bool:
        decoded: dict[str, list[bytes]] = {}
        for key in self._keys:
            signatures = decoded.get(key.version)
            if signatures is None:
                signatures = decoded[key.version] = _decode_all(candidates.get(key.version, ()))
            if signatures and key.matches(content, signatures):
                return True
        return False

    def __repr__(self) -> str:
        return f"Webhook(keys={list(self._keys)!r}, tolerance={self._tolerance:g})"


def sign_headers(
    secret_or_secrets: Secret | Sequence[Secret],
    *,
    msg_id: str,
    timestamp: int | datetime,
    payload: bytes | str,
) -> dict[str, str]:
    """Return the three signature headers a sender adds to a request.

    Every given secret or signing key signs, so receivers holding any of them accept it.

    >>> secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    >>> sign_headers(secret, msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
    ...              timestamp=1614265330, payload='{"test": 2432232314}')
    ... # doctest: +NORMALIZE_WHITESPACE
    {'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek', 'webhook-timestamp': '1614265330',
     'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='}
    """
    seconds = _unix_seconds(timestamp)
    signature = Webhook(secret_or_secrets).sign(msg_id, seconds, payload)
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(seconds), SIGNATURE_HEADER: signature}


def _sender_msg_id(msg_id: str) -> str:
    if not isinstance(msg_id, str):
        raise TypeError(f"msg_id must be str, not {type(msg_id).__name__}")
    try:
        return check_msg_id(msg_id)
    except MalformedHeaderError as exc:
        raise ValueError(str(exc)) from None


def _unix_seconds(timestamp: int | datetime) -> int:
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            raise ValueError("timestamp must be an aware datetime (with tzinfo), or unix seconds")
        seconds = int(timestamp.timestamp() // 1)
    elif isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError(f"timestamp must be int or datetime, not {type(timestamp).__name__}")
    else:
        seconds = timestamp
    if seconds < 0:
        raise ValueError("timestamp must not be before 1970 (negative unix seconds)")
    return seconds


def _signed_content(msg_id: str, timestamp: str, payload: bytes | str) -> bytes:
    body = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    return b"%s.%s.%s" % (msg_id.encode("ascii"), timestamp.encode("ascii"), body)


def _received_body(payload: bytes | str) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        try:
            return payload.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidPayloadError("the body is not valid Unicode text") from None
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    raise InvalidPayloadError(f"the body must be bytes or str, not {type(payload).__name__}")


def _decode_all(signatures: Iterable[str]) -> list[bytes]:
    decoded = []
    for signature in signatures:
        try:
            # Strict: only the base64 alphabet with correct padding, like b64decode(validate=True).
            decoded.append(binascii.a2b_base64(signature, strict_mode=True))
        except (binascii.Error, ValueError):
            # An undecodable entry simply matches nothing; another entry may still match.
            continue
    return decoded


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads with any keyword argument constructs a new decoder per call.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_json(body: bytes) -> Any:
    try:
        # JSON on the wire is UTF-8 (RFC 8259); decode strictly instead of letting json
        # guess UTF-16/32, and refuse NaN/Infinity, which are not JSON either.
        return _JSON.decode(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidPayloadError("the body is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise InvalidPayloadError(f"the body is not JSON: {exc}") from None
