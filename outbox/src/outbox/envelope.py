"""The Forjio envelope: the exact body every delivery of an event sends."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from outbox.errors import PayloadNotJSON


def isoformat(moment: datetime) -> str:
    """``2026-11-23T17:14:43.123Z``: UTC, millisecond precision, ``Z`` suffix."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(value: Any) -> str:
    """Minified, strict JSON (no NaN/Infinity, no non-string keys)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def render(
    *,
    event_id: str,
    event_type: str,
    workspace_id: str,
    created_at: datetime,
    data: Mapping[str, Any],
    request_id: str | None,
) -> str:
    """Render the envelope once, at publish time; every attempt sends these bytes.

    ``{"data": {"id", "type", "workspaceId", "createdAt", "data"}, "error": null,
    "meta": {"requestId", "timestamp"}}``, minified.
    """
    if not isinstance(data, Mapping):
        raise PayloadNotJSON(f"data must be a JSON object, not {type(data).__name__}")
    _check_keys(data)
    stamp = isoformat(created_at)
    envelope = {
        "data": {
            "id": event_id,
            "type": event_type,
            "workspaceId": workspace_id,
            "createdAt": stamp,
            "data": data,
        },
        "error": None,
        "meta": {"requestId": request_id, "timestamp": stamp},
    }
    try:
        return dumps(envelope)
    except (TypeError, ValueError) as exc:
        raise PayloadNotJSON(f"data is not JSON-serialisable: {exc}") from None


def _check_keys(value: Any) -> None:
    # json.dumps quietly turns int/float/bool/None keys into strings, so a producer would
    # publish a body that does not round-trip to what it passed. Refuse instead.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise PayloadNotJSON(f"object keys must be strings, got {key!r}")
                stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(item)
