"""Webhook.verify: headers, timestamps, signatures, rotation and bodies."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from starlette.datastructures import Headers as StarletteHeaders
from werkzeug.datastructures import Headers as WerkzeugHeaders

from catentio_signing import (
    InvalidPayloadError,
    MalformedHeaderError,
    MissingHeaderError,
    NoMatchingSignatureError,
    TimestampOutOfToleranceError,
    Webhook,
    WebhookVerificationError,
)

MakeWebhook = Callable[..., Webhook]
Signed = Callable[..., dict[str, str]]


def test_valid_request_returns_the_parsed_body(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """A correctly signed, fresh request verifies and returns its JSON body."""
    assert make_webhook().verify(body, signed(body)) == json.loads(body)


def test_str_and_bytes_bodies_are_equivalent(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """A body signed as bytes verifies when passed as str, and the reverse."""
    wh = make_webhook()
    assert wh.verify(body.decode(), signed(body)) == json.loads(body)
    assert wh.verify(body, signed(body.decode())) == json.loads(body)


def test_non_ascii_str_body_is_signed_as_utf8(make_webhook: MakeWebhook, signed: Signed) -> None:
    """A str body with non-ASCII text is signed and verified as its UTF-8 bytes."""
    text = '{"name":"Zoë ☃"}'
    assert make_webhook().verify(text.encode("utf-8"), signed(text)) == {"name": "Zoë ☃"}


@pytest.mark.parametrize(
    "transform",
    [
        str.upper,
        str.title,
        lambda name: name.replace("webhook", "WebHook"),
    ],
    ids=["upper", "title", "mixed"],
)
def test_header_names_are_case_insensitive(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, transform: Callable[[str], str]
) -> None:
    """Header names in any case are found in a plain dict."""
    headers = {transform(name): value for name, value in signed(body).items()}
    assert make_webhook().verify(body, headers) == json.loads(body)


def test_framework_header_objects_are_accepted(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """Starlette and Werkzeug header objects work as the headers argument."""
    headers = signed(body)
    starlette_headers = StarletteHeaders(
        raw=[(k.title().encode(), v.encode()) for k, v in headers.items()]
    )
    werkzeug_headers = WerkzeugHeaders([(k.upper(), v) for k, v in headers.items()])
    wh = make_webhook()
    assert wh.verify(body, starlette_headers) == json.loads(body)
    assert wh.verify(body, werkzeug_headers) == json.loads(body)


def test_bytes_header_names_and_values_are_accepted(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """Raw ASGI-style bytes headers are decoded rather than rejected."""
    headers = {k.encode(): v.encode() for k, v in signed(body).items()}
    assert make_webhook().verify(body, headers) == json.loads(body)  # type: ignore[arg-type]


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_missing_header_is_reported_as_missing(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, missing: str
) -> None:
    """Dropping any one of the three headers raises MissingHeaderError naming it, status 401."""
    headers = signed(body)
    del headers[missing]
    with pytest.raises(MissingHeaderError, match=missing) as info:
        make_webhook().verify(body, headers)
    assert info.value.status_code == 401
    assert info.value.as_json()["error"] == "missing_header"


@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_header_counts_as_missing(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, blank: str
) -> None:
    """An empty or blank webhook-signature is treated as missing."""
    headers = signed(body) | {"webhook-signature": blank}
    with pytest.raises(MissingHeaderError):
        make_webhook().verify(body, headers)


@pytest.mark.parametrize("msg_id", ["evt.1", ".", "evt 1", "evt\t1", "évt_1", "x" * 257, "evt\n1"])
def test_invalid_message_ids_are_malformed(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, msg_id: str
) -> None:
    """An id containing '.', whitespace, non-ASCII, or over 256 characters is rejected."""
    headers = signed(body) | {"webhook-id": msg_id}
    with pytest.raises(MalformedHeaderError, match="webhook-id"):
        make_webhook().verify(body, headers)


def test_longest_allowed_message_id_verifies(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """A 256-character id of visible ASCII (no '.') is accepted."""
    msg_id = "e-" + "x" * 254
    assert make_webhook().verify(body, signed(body, msg_id=msg_id)) == json.loads(body)


@pytest.mark.parametrize(
    "timestamp",
    [
        "1700000000.0",
        "1.7e9",
        "-1700000000",
        "+1700000000",
        " 1700000000",
        "0x6553f100",
        "\u0661\u0667" + "\u0660" * 8,  # Arabic-Indic digits
        "1_700_000_000",
        "abc",
        "9" * 16,
    ],
)
def test_non_integer_timestamps_are_malformed(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, timestamp: str
) -> None:
    """A timestamp that is not plain ASCII decimal digits is rejected before any crypto."""
    headers = signed(body) | {"webhook-timestamp": timestamp}
    with pytest.raises(MalformedHeaderError, match="webhook-timestamp"):
        make_webhook().verify(body, headers)


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_timestamps_within_tolerance_are_accepted(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, now: int, offset: int
) -> None:
    """Timestamps up to exactly the tolerance before or after now verify."""
    headers = signed(body, timestamp=now + offset)
    assert make_webhook().verify(body, headers) == json.loads(body)


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 86_400])
def test_timestamps_beyond_tolerance_are_rejected(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, now: int, offset: int
) -> None:
    """A validly signed request one second past the tolerance either way is rejected."""
    headers = signed(body, timestamp=now + offset)
    with pytest.raises(TimestampOutOfToleranceError) as info:
        make_webhook().verify(body, headers)
    assert ("behind" if offset < 0 else "ahead") in str(info.value)


def test_tolerance_accepts_a_timedelta(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, now: int
) -> None:
    """tolerance=timedelta(minutes=1) accepts 60 s of skew and rejects 61 s."""
    wh = make_webhook(tolerance=timedelta(minutes=1))
    assert wh.tolerance == 60
    assert wh.verify(body, signed(body, timestamp=now - 60)) == json.loads(body)
    with pytest.raises(TimestampOutOfToleranceError):
        wh.verify(body, signed(body, timestamp=now - 61))


def test_zero_tolerance_accepts_only_the_current_second(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, now: int
) -> None:
    """With tolerance=0 only a timestamp equal to now verifies."""
    wh = make_webhook(tolerance=0)
    assert wh.verify(body, signed(body, timestamp=now)) == json.loads(body)
    with pytest.raises(TimestampOutOfToleranceError):
        wh.verify(body, signed(body, timestamp=now + 1))


@pytest.mark.parametrize("tolerance", [-1, float("nan"), timedelta(seconds=-5)])
def test_negative_or_nan_tolerance_is_refused(secret: str, tolerance: float | timedelta) -> None:
    """A negative or NaN tolerance (NaN would accept any timestamp) is a configuration error."""
    with pytest.raises(ValueError, match="tolerance"):
        Webhook(secret, tolerance=tolerance)


def test_infinite_tolerance_disables_the_timestamp_check(
    signed: Signed, body: bytes, secret: str, now: int
) -> None:
    """tolerance=math.inf accepts any well-formed timestamp (for replaying archives)."""
    wh = Webhook(secret, tolerance=float("inf"), clock=lambda: now)
    assert wh.verify(body, signed(body, timestamp=0)) == json.loads(body)


def test_timestamp_is_checked_against_the_clock_at_each_call(
    signed: Signed, body: bytes, secret: str, now: int
) -> None:
    """The clock is read per request, so a request goes stale as time passes."""
    times = iter([now, now + 301])
    wh = Webhook(secret, clock=lambda: next(times))
    headers = signed(body)
    assert wh.verify(body, headers) == json.loads(body)
    with pytest.raises(TimestampOutOfToleranceError):
        wh.verify(body, headers)


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-id": "evt_2"},
        {"webhook-timestamp": "1700000001"},
    ],
    ids=["id", "timestamp"],
)
def test_changed_id_or_timestamp_breaks_the_signature(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, change: dict[str, str]
) -> None:
    """The id and timestamp are part of the signed content."""
    with pytest.raises(NoMatchingSignatureError):
        make_webhook().verify(body, signed(body) | change)


def test_signature_covers_the_exact_bytes(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """The same JSON with different whitespace does not verify: bytes are signed, not data."""
    reformatted = json.dumps(json.loads(body), indent=2).encode()
    with pytest.raises(NoMatchingSignatureError):
        make_webhook().verify(reformatted, signed(body))


def test_wrong_secret_is_rejected(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, other_secret: str
) -> None:
    """A request signed with another secret fails with NoMatchingSignatureError, status 400."""
    with pytest.raises(NoMatchingSignatureError) as info:
        make_webhook().verify(body, signed(body, secret=other_secret))
    assert info.value.status_code == 400


def test_unknown_versions_are_ignored_next_to_a_valid_one(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """Entries of versions we do not know are skipped; a valid v1 entry still matches."""
    headers = signed(body)
    headers["webhook-signature"] = "v2,bm90LWEtcmVhbC1zaWc= v0,zzz " + headers["webhook-signature"]
    assert make_webhook().verify(body, headers) == json.loads(body)


def test_only_unknown_versions_do_not_match(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """A header with only unknown versions, even carrying the right bytes, does not match."""
    headers = signed(body)
    headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v9,")
    with pytest.raises(NoMatchingSignatureError):
        make_webhook().verify(body, headers)


def test_any_listed_signature_may_match(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, other_secret: str
) -> None:
    """The valid signature may come after wrong ones and undecodable ones."""
    good = signed(body)["webhook-signature"]
    wrong = signed(body, secret=other_secret)["webhook-signature"]
    headers = signed(body) | {"webhook-signature": f"{wrong} v1,!!notbase64!! v1,AAAA {good}"}
    assert make_webhook().verify(body, headers) == json.loads(body)


@pytest.mark.parametrize("header", ["garbage", "v1", "v1, ,", ",abc", "v1,"])
def test_signature_header_without_entries_is_malformed(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, header: str
) -> None:
    """A webhook-signature with no 'version,signature' entry at all is malformed."""
    with pytest.raises(MalformedHeaderError, match="webhook-signature"):
        make_webhook().verify(body, signed(body) | {"webhook-signature": header})


def test_too_many_signatures_are_refused(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """More than 32 entries is malformed, bounding work per request, even with a valid one."""
    good = signed(body)["webhook-signature"]
    header = " ".join(["v1,AAAA"] * 32 + [good])
    with pytest.raises(MalformedHeaderError, match="more than 32"):
        make_webhook().verify(body, signed(body) | {"webhook-signature": header})


def test_signature_padding_is_checked_strictly(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """A valid MAC with its base64 padding stripped does not decode, so it does not match."""
    good = signed(body)["webhook-signature"]
    assert good.endswith("=")
    with pytest.raises(NoMatchingSignatureError):
        make_webhook().verify(body, signed(body) | {"webhook-signature": good.rstrip("=")})


def test_rotation_accepts_either_key(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, secret: str, other_secret: str
) -> None:
    """A receiver holding old and new secrets accepts requests signed by either."""
    wh = make_webhook([other_secret, secret])
    assert wh.verify(body, signed(body, secret=secret)) == json.loads(body)
    assert wh.verify(body, signed(body, secret=other_secret)) == json.loads(body)


def test_rotation_signs_with_every_key(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, secret: str, other_secret: str
) -> None:
    """A sender holding two secrets lists two signatures; a receiver with either accepts."""
    headers = signed(body, secret=[secret, other_secret])
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert make_webhook(secret).verify(body, headers) == json.loads(body)
    assert make_webhook(other_secret).verify(body, headers) == json.loads(body)


def test_raw_bytes_secret_matches_its_whsec_form(
    make_webhook: MakeWebhook, signed: Signed, body: bytes, secret: str
) -> None:
    """Raw secret bytes and the whsec_ string of the same bytes are the same key."""
    raw = base64.b64decode(secret.removeprefix("whsec_"))
    assert make_webhook(raw).verify(body, signed(body)) == json.loads(body)


def test_non_utf8_body_is_a_verification_error(make_webhook: MakeWebhook, signed: Signed) -> None:
    """A correctly signed body that is not UTF-8 raises InvalidPayloadError, not a crash."""
    payload = b'{"name": "\xff\xfe"}'
    with pytest.raises(InvalidPayloadError, match="UTF-8"):
        make_webhook().verify(payload, signed(payload))


def test_utf16_json_is_refused(make_webhook: MakeWebhook, signed: Signed) -> None:
    """JSON encoded as UTF-16 is refused even though json.loads could guess it."""
    payload = '{"a": 1}'.encode("utf-16")
    with pytest.raises(InvalidPayloadError):
        make_webhook().verify(payload, signed(payload))


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b'{"a": 1', b"NaN", b'{"a": Infinity}', b"[" * 100_000 + b"]" * 100_000],
    ids=["empty", "text", "truncated", "nan", "infinity", "deep"],
)
def test_signed_non_json_body_is_a_verification_error(
    make_webhook: MakeWebhook, signed: Signed, payload: bytes
) -> None:
    """A validly signed body that is not JSON raises InvalidPayloadError."""
    with pytest.raises(InvalidPayloadError) as info:
        make_webhook().verify(payload, signed(payload))
    assert info.value.as_json()["error"] == "invalid_payload"


def test_unsigned_non_json_body_fails_on_the_signature_first(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """The body is parsed only after the signature matched."""
    with pytest.raises(NoMatchingSignatureError):
        make_webhook().verify(b"not json", signed(body))


def test_str_body_with_lone_surrogate_is_a_verification_error(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """A str body that cannot be encoded to UTF-8 is rejected, not a UnicodeEncodeError."""
    with pytest.raises(InvalidPayloadError):
        make_webhook().verify('{"a": "\ud800"}', signed(body))


def test_non_text_header_value_is_malformed(
    make_webhook: MakeWebhook, signed: Signed, body: bytes
) -> None:
    """A header value that is neither str nor bytes is a MalformedHeaderError."""
    headers: dict[str, Any] = signed(body) | {"webhook-timestamp": 1_700_000_000}
    with pytest.raises(MalformedHeaderError):
        make_webhook().verify(body, headers)


class _BrokenHeaders:
    """A headers object whose lookups fail, like a buggy framework adapter."""

    def get(self, key: str) -> Any:
        return None

    def items(self) -> Iterator[tuple[str, str]]:
        raise KeyError("boom")


def test_headers_object_that_raises_is_malformed(make_webhook: MakeWebhook, body: bytes) -> None:
    """Whatever a headers object raises comes out as MalformedHeaderError, chained."""
    with pytest.raises(MalformedHeaderError) as info:
        make_webhook().verify(body, _BrokenHeaders())
    assert isinstance(info.value.__cause__, KeyError)


def test_every_error_is_a_webhook_verification_error() -> None:
    """All specific verification errors share one base class with a JSON form."""
    for error in (
        MissingHeaderError,
        MalformedHeaderError,
        TimestampOutOfToleranceError,
        NoMatchingSignatureError,
        InvalidPayloadError,
    ):
        assert issubclass(error, WebhookVerificationError)
        assert error("x").as_json() == {"error": error.code, "message": "x"}
