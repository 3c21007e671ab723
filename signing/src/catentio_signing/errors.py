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
    ...     print(type(exc).__name__, exc.status_code)
    MissingHeaderError 401
"""

from __future__ import annotations

__all__ = [
    "InvalidKeyError",
    "InvalidPayloadError",
    "MalformedHeaderError",
    "MissingDependencyError",
    "MissingHeaderError",
    "NoMatchingSignatureError",
    "ReplayedMessageError",
    "TimestampOutOfToleranceError",
    "WebhookVerificationError",
]


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh webhook; do not act on it.

    ``status_code`` is the HTTP status a receiver should answer with: 401 when the
    request carries no webhook credentials at all, 400 otherwise.
    """

    status_code: int = 400


class MissingHeaderError(WebhookVerificationError):
    """A required ``webhook-*`` header is absent or empty."""

    status_code = 401


class MalformedHeaderError(WebhookVerificationError):
    """A ``webhook-*`` header is present but does not follow the specification."""


class TimestampOutOfToleranceError(WebhookVerificationError):
    """``webhook-timestamp`` is further from the receiver's clock than the tolerance."""


class NoMatchingSignatureError(WebhookVerificationError):
    """None of the signatures in ``webhook-signature`` matches any of the keys."""


class ReplayedMessageError(WebhookVerificationError):
    """This exact signed message (id and timestamp) was already accepted once."""


class InvalidPayloadError(WebhookVerificationError):
    """The signature is valid but the body is not UTF-8 encoded JSON."""


class InvalidKeyError(ValueError):
    """A secret or key cannot be used (wrong prefix, bad base64, wrong length)."""


class MissingDependencyError(ImportError):
    """An optional dependency needed for the requested feature is not installed."""
