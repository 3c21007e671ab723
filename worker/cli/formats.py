"""``--json`` and ``--jsonl``: the two machine-readable forms of a listing.

``--json`` prints one JSON document once everything is read; ``--jsonl`` streams one
object per line as rows are read, for pipelines over long histories. People get a rich
table; the three carry the same fields.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

import click

from outbox.errors import ValidationError

F = TypeVar("F", bound=Callable[..., Any])


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
