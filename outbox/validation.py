"""The shape rules for what ``publish()`` is given: event types and workspace ids.

Endpoint filters (``run.*``) are the worker's: ``worker.endpoints.filters``.
"""

from __future__ import annotations

import re

from outbox.errors import InvalidEventType, InvalidWorkspaceId

MAX_EVENT_TYPE_LENGTH = 128
"""Longest accepted event type, in characters."""

MAX_WORKSPACE_ID_LENGTH = 64
"""Longest accepted workspace id, in characters (the column's width)."""

_EVENT_TYPE = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
_WORKSPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_event_type(value: object) -> str:
    """Return ``value`` if it is a valid event type such as ``run.succeeded``."""
    if not isinstance(value, str) or not value:
        raise InvalidEventType("event type must be a non-empty string")
    if len(value) > MAX_EVENT_TYPE_LENGTH:
        raise InvalidEventType(f"event type is longer than {MAX_EVENT_TYPE_LENGTH} characters")
    if not _EVENT_TYPE.fullmatch(value):
        raise InvalidEventType(
            f"event type {value!r} must be dot-separated segments of [a-z0-9_], "
            "such as 'run.succeeded'"
        )
    return value


def check_workspace_id(value: object) -> str:
    """Return ``value`` if it is a valid workspace id."""
    if not isinstance(value, str) or not value:
        raise InvalidWorkspaceId("workspace id must be a non-empty string")
    if len(value) > MAX_WORKSPACE_ID_LENGTH:
        raise InvalidWorkspaceId(
            f"workspace id is longer than {MAX_WORKSPACE_ID_LENGTH} characters"
        )
    if not _WORKSPACE_ID.fullmatch(value):
        raise InvalidWorkspaceId(f"workspace id {value!r} may hold only [A-Za-z0-9_-]")
    return value
