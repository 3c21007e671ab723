"""Tables of rows for people, with the ids whole.

People copy ids out of these tables into the next command, so id columns are never
shortened with an ellipsis, however narrow the terminal: the other columns wrap
instead. Times are shown to the second, in UTC; ``--json`` keeps the milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from worker.cli.output import console


def cell(column: str, value: Any) -> str:
    """How one value is shown in a table."""
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
