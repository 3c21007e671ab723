"""The SQLSTATEs the SQL function ``<schema>.publish(...)`` raises on bad input.

They are implementation-defined subclasses (``W``) of class 22, *data exception*, so a
driver that only looks at the class sees "bad input", and one that looks closer knows
which rule was broken. Each stands for the Python error ``outbox.publish`` raises for the
same input; the message is the same too.

======  ==========================  ==========================================
code    Python error                 when
======  ==========================  ==========================================
22W01   InvalidEventType             type empty, over 128 chars, or not ``a.b_c``
22W02   InvalidWorkspaceId           empty, over 64 chars, or not ``[A-Za-z0-9_-]``
22W03   PayloadNotJSON               ``data`` is NULL or not a JSON object
22W04   PayloadTooLarge              the rendered body is over 256 KiB
22W05   ValidationError              idempotency key or request id empty / over 255
22W06   IdempotencyKeyConflict       the key was used for another event type
======  ==========================  ==========================================
"""

from __future__ import annotations

from outbox.errors import (
    IdempotencyKeyConflict,
    InvalidEventType,
    InvalidWorkspaceId,
    PayloadNotJSON,
    PayloadTooLarge,
    ValidationError,
)

INVALID_EVENT_TYPE = "22W01"
INVALID_WORKSPACE_ID = "22W02"
PAYLOAD_NOT_JSON = "22W03"
PAYLOAD_TOO_LARGE = "22W04"
INVALID_TEXT = "22W05"
IDEMPOTENCY_KEY_CONFLICT = "22W06"

ERRORS: dict[str, type[ValidationError]] = {
    INVALID_EVENT_TYPE: InvalidEventType,
    INVALID_WORKSPACE_ID: InvalidWorkspaceId,
    PAYLOAD_NOT_JSON: PayloadNotJSON,
    PAYLOAD_TOO_LARGE: PayloadTooLarge,
    INVALID_TEXT: ValidationError,
    IDEMPOTENCY_KEY_CONFLICT: IdempotencyKeyConflict,
}
"""Each SQLSTATE and the :class:`~outbox.errors.ValidationError` it stands for."""
