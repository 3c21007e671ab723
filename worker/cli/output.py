"""How the command line prints: rich tables for people, JSON for scripts, progress on stderr.

People copy ids out of tables into the next command, so ids and statuses are never
shortened nor wrapped; tables fit the terminal from 80 columns by leaving out their least
useful columns (see ``print_listing``); other columns wrap. Times are
shown to the second, in UTC; ``--json`` keeps the milliseconds. The progress bar of long
operations (bulk replay, prune, delete) goes to stderr, so ``--json`` on stdout stays
one parseable document.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.measure import Measurement
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


WHOLE = frozenset({"status", "state", "outcome"})
"""Columns besides the ids that are never wrapped or cut."""


def _whole(column: str) -> bool:
    return column == "id" or column.endswith("_id") or column in WHOLE


def _table(
    cells: list[dict[str, str]],
    columns: Sequence[str],
    *,
    title: str | None,
    headers: Mapping[str, str],
    caption: str | None,
) -> Table:
    table = Table(title=title, header_style="bold", caption=caption)
    for column in columns:
        name = headers.get(column, column)
        if _whole(column):
            width = max([len(name), *(len(row[column]) for row in cells)])
            table.add_column(name, no_wrap=True, min_width=width)
        else:
            table.add_column(name, overflow="fold")
    for row in cells:
        table.add_row(*(row[c] for c in columns))
    return table


def fitting_columns(
    out: Console,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    drop_first: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
) -> list[str]:
    """``columns`` less as many of ``drop_first`` (in that order) as it takes for the
    table to fit ``out``'s width without squeezing any column below its natural width."""
    cells = [{c: cell(c, row.get(c)) for c in columns} for row in rows]
    shown = list(columns)
    droppable = [c for c in drop_first if c in shown]
    unbounded = out.options.update(max_width=1_000_000)
    while droppable:
        table = _table(cells, shown, title=None, headers=headers or {}, caption=None)
        if Measurement.get(out, unbounded, table).maximum <= out.width:
            break
        shown.remove(droppable.pop(0))
    return shown


def print_listing(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    drop_first: Sequence[str] = (),
) -> None:
    """A table of ``columns`` (keys of each row), readable from 80 columns up.

    People copy ids out of these tables into the next command, so ids and statuses are
    never shortened nor wrapped. When the table does not fit, the columns named in
    ``drop_first`` are left out in that order (a caption says which; ``--json`` has
    them all); what is left may wrap. ``headers`` renames columns.
    """
    out = console()
    names = headers or {}
    shown = fitting_columns(out, rows, columns, drop_first=drop_first, headers=names)
    hidden = [names.get(c, c) for c in columns if c not in shown]
    caption = f"not shown at this width: {', '.join(hidden)} (--json has every field)"
    cells = [{c: cell(c, row.get(c)) for c in shown} for row in rows]
    out.print(_table(cells, shown, title=title, headers=names, caption=caption if hidden else None))


def print_page(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    empty: str,
    next_cursor: str | None,
    headers: Mapping[str, str] | None = None,
    drop_first: Sequence[str] = (),
) -> None:
    """One page of a listing for people: the table (``empty`` when there are no rows),
    then how to ask for the next page."""
    if not rows:
        click.echo(empty)
        return
    print_listing(rows, columns, headers=headers, drop_first=drop_first)
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
