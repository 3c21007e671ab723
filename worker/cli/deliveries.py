"""``deliveries``: what was sent, and what came back."""

from __future__ import annotations

from typing import Any

import click

from outbox.models import Delivery
from worker.cli import options
from worker.cli.options import Format, format_options, json_option, pick_format, split_values
from worker.cli.output import (
    console,
    print_json,
    print_jsonl,
    print_listing,
    print_page,
    print_record,
)
from worker.cli.state import State, pass_state
from worker.ops.history import (
    DeliveryFilter,
    delivery_attempts,
    delivery_page,
    get_delivery,
    iter_deliveries,
)
from worker.ops.views import attempt_view, delivery_view

SHOWN_BODY_CHARS = 2000
"""Response body characters printed per attempt in the table view (``--json`` has all
that was stored, itself capped by CATENTIO_MAX_RESPONSE_BYTES)."""

LIST_COLUMNS = [
    "id",
    "created_at",
    "event_type",
    "endpoint_id",
    "status",
    "attempts",
    "last",
    "next_attempt_at",
]


@click.group()
def deliveries() -> None:
    """Deliveries and their attempts."""


def delivery_row(delivery: Delivery) -> dict[str, Any]:
    """A delivery as a listing shows it: its view plus ``last``, the last status code or,
    without a response, the last error kind (``connect``, ``timeout``, …)."""
    view = delivery_view(delivery)
    view["last"] = view["last_status_code"] or view["last_error_kind"]
    return view


@deliveries.command("list")
@click.option("--workspace", help="Only this workspace.")
@click.option("--endpoint", "endpoint_id", help="Only to this endpoint.")
@click.option("--event", "event_id", help="Only of this event.")
@click.option(
    "--type", "types", multiple=True, help="Event type, 'prefix.*' or '*'; repeat or comma."
)
@options.status_option
@options.window_options
@options.page_options
@format_options
@pass_state
def deliveries_list(
    state: State,
    workspace: str | None,
    endpoint_id: str | None,
    event_id: str | None,
    types: tuple[str, ...],
    status_values: tuple[str, ...],
    since: str | None,
    until: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    as_jsonl: bool,
) -> None:
    """Newest deliveries first, a page at a time.

    --since/--until select by creation time (2h, 3d or an ISO time). Pages are keyset:
    pass the id of a page's last row as --after to get the next one (the table prints
    it); a page shorter than --limit is the last.
    """
    fmt = pick_format(as_json, as_jsonl)
    selection = DeliveryFilter(
        workspace_id=workspace,
        endpoint_id=endpoint_id,
        event_id=event_id,
        event_types=tuple(split_values(types)),
        statuses=options.statuses(status_values),
        since=options.moment("--since", since),
        until=options.moment("--until", until),
    )
    sessions = state.sessions()
    if fmt is Format.JSONL:
        print_jsonl(
            delivery_row(d) for d in iter_deliveries(sessions, selection, limit=limit, after=cursor)
        )
        return
    with sessions() as session:
        page = delivery_page(session, selection, limit=limit, after=cursor)
    rows = [delivery_row(d) for d in page.rows]
    if fmt is Format.JSON:
        print_json(rows)
        return
    print_page(
        rows,
        LIST_COLUMNS,
        empty="no deliveries match",
        next_cursor=page.next_cursor,
        headers={"created_at": "created", "next_attempt_at": "next attempt"},
        drop_first=("next_attempt_at", "created_at", "endpoint_id", "attempts", "event_type"),
    )


@deliveries.command("show")
@click.argument("delivery_id")
@json_option
@pass_state
def deliveries_show(state: State, delivery_id: str, as_json: bool) -> None:
    """One delivery with every attempt: when, how long, what status or error, the
    request headers sent (no secret) and the response headers and body (capped)."""
    with state.sessions()() as session:
        delivery = get_delivery(session, delivery_id)
        attempts = [attempt_view(a) for a in delivery_attempts(session, delivery_id)]
    view = {**delivery_view(delivery), "attempt_history": attempts}
    if as_json:
        print_json(view)
        return
    print_record(delivery_view(delivery), title=delivery_id)
    print_listing(
        attempts,
        [
            "number",
            "trigger",
            "started_at",
            "duration_ms",
            "response_status",
            "error_kind",
            "outcome",
        ],
        title="attempts",
        headers={"response_status": "status", "duration_ms": "ms"},
        drop_first=("trigger", "duration_ms"),
    )
    for attempt in attempts:
        _print_attempt(attempt)


def _print_attempt(attempt: dict[str, Any]) -> None:
    out = console()
    status = attempt["response_status"] or attempt["error_kind"] or "-"
    out.rule(f"attempt {attempt['number']} ({attempt['trigger']}): {status}", align="left")
    if attempt["error"]:
        out.print(f"error: {attempt['error']}", markup=False)
    out.print("request headers:", markup=False)
    for name, value in sorted(attempt["request_headers"].items()):
        out.print(f"  {name}: {value}", markup=False)
    if attempt["response_headers"] is not None:
        out.print("response headers:", markup=False)
        for name, value in sorted(attempt["response_headers"].items()):
            out.print(f"  {name}: {value}", markup=False)
    body = attempt["response_body"]
    if body:
        shown = body if len(body) <= SHOWN_BODY_CHARS else body[:SHOWN_BODY_CHARS] + "…"
        more = " (truncated when received)" if attempt["response_truncated"] else ""
        out.print(f"response body{more}:", markup=False)
        out.print(f"  {shown}", markup=False, highlight=False)


COMMANDS = [deliveries]
