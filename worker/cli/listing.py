"""Tables of rows for people, readable from 80 columns up.

People copy ids out of these tables into the next command, so ids and statuses are
never shortened with an ellipsis nor wrapped, however narrow the terminal. When the
table does not fit, the columns a listing names as least useful are left out, one by
one (a caption says which; ``--json`` has them all); what is left may wrap. Times are
shown to the second, in UTC; ``--json`` keeps the milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from worker.cli.output import cell, console

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
    while droppable:
        table = _table(cells, shown, title=None, headers=headers or {}, caption=None)
        unbounded = out.options.update(max_width=1_000_000)
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
    """A table of ``columns`` (keys of each row); ``headers`` renames columns;
    ``drop_first`` lists the columns to leave out first when the terminal is narrow."""
    out = console()
    names = headers or {}
    shown = fitting_columns(out, rows, columns, drop_first=drop_first, headers=names)
    hidden = [names.get(c, c) for c in columns if c not in shown]
    caption = f"not shown at this width: {', '.join(hidden)} (--json has every field)"
    cells = [{c: cell(c, row.get(c)) for c in shown} for row in rows]
    out.print(_table(cells, shown, title=title, headers=names, caption=caption if hidden else None))
