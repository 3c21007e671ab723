"""``events``: publish into the outbox and look at events."""

from __future__ import annotations

import sys
from typing import Any

import click

from outbox.errors import PayloadTooLarge, ValidationError
from outbox.models import Event
from outbox.publish import publish
from worker.cli import options
from worker.cli.options import (
    Format,
    format_options,
    json_option,
    parse_json_object,
    pick_format,
    split_values,
)
from worker.cli.output import print_json, print_jsonl, print_listing, print_page, print_record
from worker.cli.state import State, pass_state
from worker.ops.history import (
    EventFilter,
    event_deliveries,
    event_page,
    fanout_counts,
    get_event,
    iter_events,
)
from worker.ops.views import delivery_view, event_view, fanout_text


@click.group()
def events() -> None:
    """Outbox events."""


@events.command("publish")
@click.option("--workspace", required=True)
@click.option("--type", "event_type", required=True, help="e.g. run.succeeded")
@click.option(
    "--data",
    required=True,
    help="The event's data, a JSON object; @FILE reads it from a file, - from stdin "
    "(for bodies past the command line's length limit).",
)
@click.option("--idempotency-key", help="Publishing the same key again returns the first event.")
@click.option("--request-id", help="Goes into the envelope's meta.requestId.")
@json_option
@pass_state
def events_publish(
    state: State,
    workspace: str,
    event_type: str,
    data: str,
    idempotency_key: str | None,
    request_id: str | None,
    as_json: bool,
) -> None:
    """Put one event in the outbox (the poller fans it out)."""
    payload = parse_json_object(_read_data(data, state.settings.max_body_bytes), "--data")
    with state.sessions()() as session, session.begin():
        event = publish(
            session,
            workspace_id=workspace,
            type=event_type,
            data=payload,
            idempotency_key=idempotency_key,
            request_id=request_id,
            max_body_bytes=state.settings.max_body_bytes,
        )
    view = event_view(event)
    if as_json:
        print_json(view)
    else:
        click.echo(f"published {event.id} ({event.type}) in {event.workspace_id}")


def _read_data(value: str, max_bytes: int) -> str:
    """``--data``: the JSON itself, ``@path`` for a file's content or ``-`` for stdin.
    At most a little over the body limit is read, so a huge file fails fast."""
    text: str
    if value == "-":
        where = "stdin"
        text = sys.stdin.read(max_bytes * 2 + 1)
    elif value.startswith("@"):
        where = value[1:]
        try:
            with open(where, encoding="utf-8") as handle:
                text = handle.read(max_bytes * 2 + 1)
        except OSError as exc:
            raise ValidationError(
                f"--data {value}: cannot read {where!r}: {exc.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise ValidationError(f"--data {value}: {where!r} is not UTF-8 text") from None
    else:
        return value
    if len(text) > max_bytes * 2:
        raise PayloadTooLarge(
            f"--data from {where} is larger than the {max_bytes}-byte body limit "
            "(CATENTIO_MAX_BODY_BYTES)"
        )
    return text


def _row(event: Event, fanout: dict[str, int]) -> dict[str, Any]:
    return {**event_view(event), "deliveries": fanout, "fanout": fanout_text(fanout)}


@events.command("list")
@click.option("--workspace", help="Only this workspace.")
@click.option(
    "--type", "types", multiple=True, help="Event type, 'prefix.*' or '*'; repeat or comma."
)
@click.option(
    "--waiting/--dispatched",
    default=None,
    help="Only events still waiting in the outbox, or only those already fanned out.",
)
@options.window_options
@options.page_options
@format_options
@pass_state
def events_list(
    state: State,
    workspace: str | None,
    types: tuple[str, ...],
    waiting: bool | None,
    since: str | None,
    until: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    as_jsonl: bool,
) -> None:
    """Newest events first, with their fan-out (deliveries per status)."""
    fmt = pick_format(as_json, as_jsonl)
    selection = EventFilter(
        workspace_id=workspace,
        event_types=tuple(split_values(types)),
        waiting=waiting,
        since=options.moment("--since", since),
        until=options.moment("--until", until),
    )
    sessions = state.sessions()
    if fmt is Format.JSONL:
        stream = iter_events(sessions, selection, limit=limit, after=cursor)
        print_jsonl(_row(event, fanout) for event, fanout in stream)
        return
    with sessions() as session:
        page = event_page(session, selection, limit=limit, after=cursor)
        fanout = fanout_counts(session, [e.id for e in page.rows])
    rows = [_row(e, fanout[e.id]) for e in page.rows]
    if fmt is Format.JSON:
        print_json(rows)
        return
    print_page(
        rows,
        ["id", "workspace_id", "type", "created_at", "dispatched_at", "fanout"],
        empty="no events match",
        next_cursor=page.next_cursor,
        headers={"workspace_id": "workspace", "fanout": "deliveries"},
        drop_first=("dispatched_at", "workspace_id", "created_at"),
    )


@events.command("show")
@click.argument("event_id")
@json_option
@pass_state
def events_show(state: State, event_id: str, as_json: bool) -> None:
    """One event, its exact body and its fan-out: which endpoints, which statuses."""
    with state.sessions()() as session:
        event = get_event(session, event_id)
        fanout = [
            {**delivery_view(delivery), "endpoint_url": url}
            for delivery, url in event_deliveries(session, event_id)
        ]
    view = {**event_view(event, with_body=True), "deliveries": fanout}
    if as_json:
        print_json(view)
        return
    print_record({k: v for k, v in view.items() if k not in ("deliveries", "data")}, title=event_id)
    if not fanout:
        click.echo("no deliveries (waiting in the outbox, or no endpoint subscribed)")
        return
    print_listing(
        fanout,
        ["id", "endpoint_id", "endpoint_url", "status", "attempts", "last_status_code"],
        title="deliveries",
        headers={"endpoint_url": "url", "last_status_code": "last"},
        drop_first=("endpoint_url", "attempts"),
    )


COMMANDS = [events]
