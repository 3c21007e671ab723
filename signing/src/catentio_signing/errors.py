"""Every exception ``catentio_signing`` raises, in one place.

Receiving side: ``Webhook.verify`` raises only ``WebhookVerificationError`` (or one of its
subclasses), whatever the request looks like, so a handler needs a single ``except``::

    WebhookVerificationError                   verify() rejected the request
    ├── MissingHeaderError                     a webhook-* header is absent or empty   (401)
    ├── MalformedHeaderError                   a header is present but unparseable     (400)
    ├── TimestampOutOfToleranceError           webhook-timestamp too far from now      (400)
    ├── NoMatchingSignatureError               no listed signature matches any key     (400)
    ├── ReplayedMessageError                   this exact message was already accepted (400)
    └── InvalidPayloadError                    signed body is not UTF-8 JSON           (400)
        └── PayloadTooLargeError               body over a middleware's size limit     (413)

Configuration side, raised when a ``Webhook`` is built or asked to sign, never by
``verify``::

    InvalidKeyError (ValueError)               a secret or key string cannot be used
    MissingDependencyError (ImportError)       Ed25519 used without the ``ed25519`` extra

Example::

    >>> from catentio_signing import Webhook, WebhookVerificationError
    >>> wh = Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    >>> try:
    ...     wh.verify(b"{}", {})
    ... except WebhookVerificationError as exc:
    ...     print(type(exc).__name__, exc.status_code, exc.as_json())
    MissingHeaderError 401 {'error': 'missing_header', 'message': 'missing webhook-id header'}
"""

from __future__ import annotations

__all__ = [
    "InvalidKeyError",
    "InvalidPayloadError",
    "MalformedHeaderError",
    "MissingDependencyError",
    "MissingHeaderError",
    "NoMatchingSignatureError",
    "PayloadTooLargeError",
    "ReplayedMessageError",
    "TimestampOutOfToleranceError",
    "WebhookVerificationError",
]


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh webhook; do not act on it.

    ``status_code`` is 401 when the request carries no webhook credentials at all and 400
    otherwise; ``as_json()`` is the short error body the framework helpers send.
    """

    #: The HTTP status a receiver should answer with.
    status_code: int = 400
    #: A stable, machine-readable name for the condition, used in JSON error bodies.
    code: str = "verification_failed"

    def as_json(self) -> dict[str, str]:
        """Return the short JSON error body the framework helpers answer with."""
        return {"error": self.code, "message": str(self)}


class MissingHeaderError(WebhookVerificationError):
    """A required ``webhook-*`` header is absent or empty."""

    status_code = 401
    code = "missing_header"


class MalformedHeaderError(WebhookVerificationError):
    """A ``webhook-*`` header is present but does not follow the specification."""

    code = "malformed_header"


class TimestampOutOfToleranceError(WebhookVerificationError):
    """``webhook-timestamp`` is further from the receiver's clock than the tolerance."""

    code = "timestamp_out_of_tolerance"


class NoMatchingSignatureError(WebhookVerificationError):
    """None of the signatures in ``webhook-signature`` matches any of the keys."""

    code = "no_matching_signature"


class ReplayedMessageError(WebhookVerificationError):
    """This exact signed message (id and timestamp) was already accepted once."""

    code = "replayed_message"


class InvalidPayloadError(WebhookVerificationError):
    """The signature is valid but the body is not UTF-8 encoded JSON."""

    code = "invalid_payload"


class PayloadTooLargeError(InvalidPayloadError):
    """The body is larger than a middleware's ``max_body_bytes``; it was not read in full."""

    status_code = 413
    code = "payload_too_large"


class InvalidKeyError(ValueError):
    """A secret or key cannot be used (wrong prefix, bad base64, wrong length)."""


class MissingDependencyError(ImportError):
    """An optional dependency needed for the requested feature is not installed."""
