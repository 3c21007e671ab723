"""Sign and verify Catentio webhooks (the Standard Webhooks format) in any Python app.

Three lines on the receiving side::

    from catentio_signing import Webhook
    wh = Webhook(os.environ["CATENTIO_WEBHOOK_SECRET"])
    event = wh.verify(raw_body, request.headers)  # raises WebhookVerificationError

Framework helpers live in their own modules so that this one imports nothing outside the
standard library: ``catentio_signing.flask``, ``.fastapi``, ``.django``, ``.wsgi``, ``.asgi``.
"""

from catentio_signing.errors import (
    InvalidKeyError,
    InvalidPayloadError,
    MalformedHeaderError,
    MissingDependencyError,
    MissingHeaderError,
    NoMatchingSignatureError,
    PayloadTooLargeError,
    ReplayedMessageError,
    TimestampOutOfToleranceError,
    WebhookVerificationError,
)
from catentio_signing.keys import generate_keypair, generate_secret, public_key
from catentio_signing.replay import MemorySeenStore, SeenStore
from catentio_signing.webhook import DEFAULT_TOLERANCE, Webhook, sign_headers

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TOLERANCE",
    "InvalidKeyError",
    "InvalidPayloadError",
    "MalformedHeaderError",
    "MemorySeenStore",
    "MissingDependencyError",
    "MissingHeaderError",
    "NoMatchingSignatureError",
    "PayloadTooLargeError",
    "ReplayedMessageError",
    "SeenStore",
    "TimestampOutOfToleranceError",
    "Webhook",
    "WebhookVerificationError",
    "__version__",
    "generate_keypair",
    "generate_secret",
    "public_key",
    "sign_headers",
]
