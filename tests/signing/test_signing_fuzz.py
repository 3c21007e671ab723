"""Property-based fuzzing of Webhook.verify: nothing but WebhookVerificationError escapes."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from catentio_signing import Webhook, WebhookVerificationError, sign_headers

NOW = 1_700_000_000
SECRET = "whsec_" + base64.b64encode(b"fuzz-secret-of-32-bytes-long!!!!").decode()
SIGNING_KEY = "whsk_" + base64.b64encode(b"\x07" * 32).decode()
WEBHOOK = Webhook([SECRET, SIGNING_KEY], clock=lambda: NOW)

pytestmark = pytest.mark.slow  # hundreds of examples per test

# Hypothesis keeps no example database here: it would write into the repository checkout.
FUZZ = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

HEADER_NAMES = st.sampled_from(
    [
        "webhook-id",
        "Webhook-Id",
        "WEBHOOK-TIMESTAMP",
        "webhook-timestamp",
        "webhook-signature",
        "Webhook-Signature",
        "content-type",
        "svix-id",
    ]
)
BASE64ISH = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=100
)
SIGNATURE_ENTRY = st.one_of(
    st.builds(lambda v, s: f"{v},{s}", st.sampled_from(["v1", "v1a", "v2", ""]), BASE64ISH),
    st.text(max_size=30),
)
SIGNATURE_HEADER = st.lists(SIGNATURE_ENTRY, max_size=40).map(" ".join)
TIMESTAMP = st.one_of(
    st.integers(min_value=NOW - 400, max_value=NOW + 400).map(str),
    st.integers().map(str),
    st.floats(allow_nan=True).map(str),
    st.text(max_size=20),
)
MSG_ID = st.one_of(st.from_regex(r"[a-z_]{1,20}", fullmatch=True), st.text(max_size=300))
HEADER_VALUE: st.SearchStrategy[Any] = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=100),
    st.none(),
    st.integers(),
    st.lists(st.text(max_size=10), max_size=2),
)
BODY = st.one_of(st.binary(max_size=500), st.text(max_size=200))


def _verify_or_reject(body: Any, headers: Any) -> None:
    # Success or WebhookVerificationError are the only allowed outcomes; anything else
    # propagates and fails the test.
    with contextlib.suppress(WebhookVerificationError):
        WEBHOOK.verify(body, headers)


@FUZZ
@given(body=BODY, headers=st.dictionaries(HEADER_NAMES | st.text(max_size=20), HEADER_VALUE))
@example(body=b"\xff", headers={})
@example(body="\ud800", headers={"webhook-id": "a", "webhook-timestamp": str(NOW)})
def test_random_header_sets_only_raise_verification_errors(body: Any, headers: Any) -> None:
    """Arbitrary bodies and header dicts (any names, any value types) never crash verify."""
    _verify_or_reject(body, headers)


@FUZZ
@given(body=BODY, msg_id=MSG_ID, timestamp=TIMESTAMP, signature=SIGNATURE_HEADER)
@example(body=b"{}", msg_id="a.b", timestamp=str(NOW), signature="v1,AAAA")
@example(body=b"{}", msg_id="a", timestamp="1" * 5000, signature="v1,AAAA")
@example(body=b"{}", msg_id="a", timestamp=str(NOW), signature="v1a," + "A" * 86 + "==")
def test_structured_headers_only_raise_verification_errors(
    body: Any, msg_id: str, timestamp: str, signature: str
) -> None:
    """All three headers present with random, nearly valid values never crash verify."""
    headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
    _verify_or_reject(body, headers)


@FUZZ
@given(
    payload=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=8), children, max_size=4)
            ),
            max_leaves=20,
        ).map(lambda value: json.dumps(value).encode()),
    ),
    msg_id=st.from_regex(r"[a-zA-Z0-9_\-]{1,40}", fullmatch=True),
    offset=st.integers(min_value=-300, max_value=300),
)
def test_correctly_signed_bodies_verify_or_fail_only_as_bad_json(
    payload: bytes, msg_id: str, offset: int
) -> None:
    """Any body signed by us verifies when it is JSON and is otherwise InvalidPayloadError."""
    headers = sign_headers(
        [SECRET, SIGNING_KEY], msg_id=msg_id, timestamp=NOW + offset, payload=payload
    )
    try:
        expected = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        try:
            WEBHOOK.verify(payload, headers)
        except WebhookVerificationError as exc:
            assert exc.code == "invalid_payload"
        else:
            raise AssertionError("a non-JSON body was accepted")
    else:
        assert WEBHOOK.verify(payload, headers) == expected


@FUZZ
@given(
    payload=st.binary(min_size=1, max_size=200),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_single_byte_change_is_rejected(payload: bytes, position: int, flip: int) -> None:
    """Changing any one byte of a signed body makes verification fail, never crash."""
    headers = sign_headers(SECRET, msg_id="evt_1", timestamp=NOW, payload=payload)
    tampered = bytearray(payload)
    tampered[position % len(payload)] ^= flip
    try:
        WEBHOOK.verify(bytes(tampered), headers)
    except WebhookVerificationError as exc:
        assert exc.code == "no_matching_signature"
    else:
        raise AssertionError("a tampered body was accepted")
