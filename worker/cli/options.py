"""What the commands read: shared options, their parsing, and the output format.

Bad values raise our ``ValidationError``, so the command line answers with one line on
stderr and exit code 2, whichever option was wrong.

``--json`` prints one JSON document once everything is read; ``--jsonl`` streams one
object per line as rows are read, for pipelines over long histories. People get a rich
table; the three carry the same fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import click

from outbox.clock import utcnow
from outbox.errors import ValidationError
from outbox.models import DeliveryStatus
from worker.durations import parse_moment
from worker.errors import InvalidDuration
from worker.ops.history import check_statuses

F = TypeVar("F", bound=Callable[..., Any])

_RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


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


class Format(StrEnum):
    """How a command prints."""

    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"


def format_options(function: F) -> F:
    """Adds ``--json`` and ``--jsonl``; read them back with :func:`pick_format`."""
    function = click.option(
        "--jsonl", "as_jsonl", is_flag=True, help="Stream one JSON object per line."
    )(function)
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(
        function
    )


def pick_format(as_json: bool, as_jsonl: bool) -> Format:
    """The chosen format; both flags at once is a usage error."""
    if as_json and as_jsonl:
        raise ValidationError("--json and --jsonl cannot be used together")
    if as_json:
        return Format.JSON
    return Format.JSONL if as_jsonl else Format.TABLE


def page_options(function: F) -> F:
    """Adds ``--limit`` and ``--after`` (keyset pagination, newest first)."""
    function = click.option(
        "--after", "cursor", help="Continue after this id (the last row of the previous page)."
    )(function)
    return click.option(
        "--limit",
        type=click.IntRange(1, 10_000_000),
        default=50,
        show_default=True,
        help="Rows to print (with --jsonl, read in batches: any number).",
    )(function)


def window_options(function: F) -> F:
    """Adds ``--since`` and ``--until`` (ISO time, or a duration ago: 2h, 3d)."""
    function = click.option(
        "--until", help="Created before this: ISO time or a duration ago (30m)."
    )(function)
    return click.option(
        "--since", help="Created at or after this: ISO time (2026-11-23T10:00Z) or ago (2h, 3d)."
    )(function)


def moment(option: str, text: str | None, *, now: datetime | None = None) -> datetime | None:
    """``--since``/``--until`` → an aware UTC time (None when not given)."""
    if text is None:
        return None
    try:
        return parse_moment(text, now=now or utcnow())
    except InvalidDuration as exc:
        raise InvalidDuration(f"{option}: {exc}") from None


def statuses(values: tuple[str, ...], *, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``--status failed,skipped`` (or repeated) → checked statuses."""
    chosen = split_values(values)
    if not chosen:
        return default
    try:
        return check_statuses(chosen)
    except ValidationError as exc:
        raise ValidationError(f"--status: {exc}") from None


def status_option(function: F) -> F:
    """Adds ``--status`` (repeat or comma-separate)."""
    return click.option(
        "--status",
        "status_values",
        multiple=True,
        help=f"{', '.join(DeliveryStatus)}; repeat or comma-separate.",
    )(function)


def rate(text: str | None) -> float | None:
    """``--rate 50/s`` (or ``3000/m``, ``50``) → deliveries per second."""
    if text is None:
        return None
    number, _, unit = text.strip().lower().partition("/")
    try:
        value = float(number) / _RATE_UNITS[unit or "s"]
    except (KeyError, ValueError):
        raise ValidationError(f"--rate {text!r} must look like 50/s, 3000/m or 50") from None
    if not value > 0:
        raise ValidationError(f"--rate {text!r} must be positive")
    return value
