"""Time-sortable, prefixed identifiers (``evt_…``, ``ep_…``, ``dlv_…``, ``att_…``, …).

The 26 characters after the prefix are a 48-bit millisecond timestamp followed by 80
random bits, in lowercase Crockford base32. Sorting ids sorts rows by creation time,
which is what keyset pagination and the poller's ``ORDER BY id`` rely on.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_LENGTH = 26  # 130 bits of base32 hold the 128 bits of timestamp + randomness

EVENT = "evt"
ENDPOINT = "ep"
DELIVERY = "dlv"
ATTEMPT = "att"
API_KEY = "ak"
REPLAY = "rpl"
REQUEST = "req"


def new_id(prefix: str, *, now_ms: int | None = None) -> str:
    """A new identifier ``{prefix}_{26 chars}``, ordered by creation time."""
    millis = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    value = (millis & ((1 << 48) - 1)) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(_LENGTH):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"


def is_id(value: str, prefix: str) -> bool:
    """Whether ``value`` has the shape of an id :func:`new_id` makes with ``prefix``."""
    body = value[len(prefix) + 1 :]
    return (
        value.startswith(prefix + "_")
        and len(body) == _LENGTH
        and all(c in _ALPHABET for c in body)
    )
