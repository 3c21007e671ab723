"""How the command line prints: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr). Piped output gets 160 columns rather than 80,
    so tables of ids are not cut, unless ``COLUMNS`` says otherwise (rich reads it)."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, highlight=False, width=width)


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def print_jsonl(rows: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object per line, flushed as it goes (for pipelines)."""
    for row in rows:
        sys.stdout.write(json.dumps(row, separators=(",", ":"), default=str) + "\n")
        sys.stdout.flush()


TIME_SUFFIXES = ("_at", "_since", "_until")
"""Columns holding ISO times, shown to the second."""


def cell(column: str, value: Any) -> str:
    """How one value is shown in a table: ``-`` for nothing, yes/no, lists joined,
    one decimal, and times (``*_at``, ``*_since``, ``*_until``) to the second."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.1f}"
    if column.endswith(TIME_SUFFIXES) and isinstance(value, str) and len(value) >= 19:
        return value[:10] + " " + value[11:19]
    return str(value)


def print_record(record: Mapping[str, Any], *, title: str | None = None) -> None:
    """One record as a two-column table."""
    table = Table(title=title, show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in record.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        table.add_row(key, cell(key, value))
    console().print(table)
