"""How the command line prints: rich tables for people, JSON for scripts, progress on stderr.

People copy ids out of tables into the next command, so id columns are never shortened
with an ellipsis, however narrow the terminal: the other columns wrap instead. Times are
shown to the second, in UTC; ``--json`` keeps the milliseconds. The progress bar of long
operations (bulk replay, prune, delete) goes to stderr, so ``--json`` on stdout stays
one parseable document.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr). Piped output gets 160 columns rather than 80,
    so tables of ids are not cut."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 160
    return Console(stderr=stderr, highlight=False, width=width)


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def print_jsonl(rows: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object per line, flushed as it goes (for pipelines)."""
    for row in rows:
        sys.stdout.write(json.dumps(row, separators=(",", ":"), default=str) + "\n")
        sys.stdout.flush()


def cell(column: str, value: Any) -> str:
    """How one value is shown in a table: ``-`` for nothing, yes/no, lists joined,
    one decimal, and ``*_at`` times to the second."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.1f}"
    if column.endswith("_at") and isinstance(value, str) and len(value) >= 19:
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


def _whole(column: str) -> bool:
    return column == "id" or column.endswith("_id")


def print_listing(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """A table of ``columns`` (keys of each row); ``headers`` renames columns."""
    table = Table(title=title, header_style="bold")
    cells = [[cell(c, row.get(c)) for c in columns] for row in rows]
    for index, column in enumerate(columns):
        name = (headers or {}).get(column, column)
        if _whole(column):
            width = max([len(name), *(len(r[index]) for r in cells)])
            table.add_column(name, no_wrap=True, min_width=width)
        else:
            table.add_column(name)
    for values in cells:
        table.add_row(*values)
    console().print(table)


def print_page(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    empty: str,
    next_cursor: str | None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """One page of a listing for people: the table (``empty`` when there are no rows),
    then how to ask for the next page."""
    if not rows:
        click.echo(empty)
        return
    print_listing(rows, columns, headers=headers)
    if next_cursor:
        click.echo(f"more: --after {next_cursor}")


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``; the bar is left on screen with its final count."""
    columns = (
        TextColumn(f"  {label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console(stderr=True), transient=False) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)
