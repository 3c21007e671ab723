"""Opaque keyset cursors: the last id of a page and a fingerprint of the filters.

A cursor is base64url of ``{"after": id, "filter": fingerprint}``. The fingerprint
ties it to the query it came from, so a cursor reused with other filters is refused
instead of silently skipping rows. Ids are time-sortable and unique, so "older than
the last id seen" is stable under concurrent inserts: new rows sort before the page,
never into it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

from outbox.envelope import dumps
from worker.api.errors import ApiError, Code

DEFAULT_LIMIT = 50
"""Rows per page unless ``limit`` says otherwise."""

MAX_LIMIT = 250
"""Largest ``limit`` accepted."""


_ID_ALPHABET = frozenset("0123456789abcdefghjkmnpqrstvwxyz")


def _is_id(value: str, prefix: str) -> bool:
    body = value[len(prefix) + 1 :]
    return value.startswith(prefix + "_") and len(body) == 26 and set(body) <= _ID_ALPHABET


def fingerprint(filters: Mapping[str, object]) -> str:
    """A short digest of the filters a list was asked with."""
    canonical = json.dumps(filters, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def encode(after: str, filters: Mapping[str, object]) -> str:
    """The cursor that continues after ``after`` with the same ``filters``."""
    raw = dumps({"after": after, "filter": fingerprint(filters)}).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(cursor: str | None, filters: Mapping[str, object], *, prefix: str) -> str | None:
    """The id a cursor continues after (None without a cursor), or VALIDATION_ERROR."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        after = value["after"]
        stamp = value["filter"]
    except (ValueError, KeyError, TypeError, UnicodeEncodeError):
        raise ApiError(
            Code.VALIDATION_ERROR,
            "cursor is not one this API handed out (use meta.page.nextCursor)",
            field="cursor",
        ) from None
    if not isinstance(after, str) or not _is_id(after, prefix):
        raise ApiError(Code.VALIDATION_ERROR, "cursor is not for this list", field="cursor")
    if stamp != fingerprint(filters):
        raise ApiError(
            Code.VALIDATION_ERROR,
            "cursor belongs to a list with other filters; start again without it",
            field="cursor",
        )
    return after
