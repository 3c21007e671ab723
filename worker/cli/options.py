"""Options several commands share."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from outbox.errors import ValidationError

F = TypeVar("F", bound=Callable[..., Any])


def json_option(function: F) -> F:
    """``--json``: print one JSON document instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(function)


def split_values(values: tuple[str, ...]) -> list[str]:
    """``("a,b", "c")`` → ``["a", "b", "c"]``: repeated or comma-separated values."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def parse_json_object(text: str, what: str) -> dict[str, object]:
    """Parse ``text`` as a JSON object or raise a clear ValidationError."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a JSON object")
    return value
