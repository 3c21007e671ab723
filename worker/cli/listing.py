"""Tables of rows for people, with the ids whole.

People copy ids out of these tables into the next command, so id columns are never
shortened with an ellipsis, however narrow the terminal: the other columns wrap
instead. Times are shown to the second, in UTC; ``--json`` keeps the milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from worker.cli.output import cell, console


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
