"""``events``: publish into the outbox and look at events."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outbox.errors import EventNotFound
from outbox.models import Delivery, Endpoint, Event
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
from worker.cli.output import print_json, print_jsonl, print_listing, print_record
from worker.cli.state import State, pass_state
from worker.ops.history import EventFilter, event_page
from worker.ops.views import delivery_view, event_view, fanout_text


@click.group()
def events() -> None:
    """Outbox events."""


@events.command("publish")
@click.option("--workspace", required=True)
@click.option("--type", "event_type", required=True, help="e.g. run.succeeded")
@click.option("--data", required=True, help="The event's data, a JSON object.")
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
    payload = parse_json_object(data, "--data")
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


def _fanout(session: Session, event_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per event: how many of its deliveries are in each status."""
    counts: dict[str, dict[str, int]] = {i: {} for i in event_ids}
    if event_ids:
        query = (
            select(Delivery.event_id, Delivery.status, func.count())
            .where(Delivery.event_id.in_(event_ids))
            .group_by(Delivery.event_id, Delivery.status)
        )
        for event_id, status, count in session.execute(query):
            counts[event_id][status] = int(count)
    return counts


def _rows(session: Session, page: list[Event]) -> list[dict[str, Any]]:
    fanout = _fanout(session, [e.id for e in page])
    return [
        {**event_view(e), "deliveries": fanout[e.id], "fanout": fanout_text(fanout[e.id])}
        for e in page
    ]


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
        left = limit
        while left > 0:
            with sessions() as session:
                page = event_page(session, selection, limit=min(500, left), after=cursor)
                print_jsonl(_rows(session, page.rows))
            left -= len(page.rows)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
        return
    with sessions() as session:
        page = event_page(session, selection, limit=limit, after=cursor)
        rows = _rows(session, page.rows)
    if fmt is Format.JSON:
        print_json(rows)
        return
    if not rows:
        click.echo("no events match")
        return
    print_listing(
        rows,
        ["id", "workspace_id", "type", "created_at", "dispatched_at", "fanout"],
        headers={"workspace_id": "workspace", "fanout": "deliveries"},
    )
    if page.next_cursor:
        click.echo(f"more: --after {page.next_cursor}")


@events.command("show")
@click.argument("event_id")
@json_option
@pass_state
def events_show(state: State, event_id: str, as_json: bool) -> None:
    """One event, its exact body and its fan-out: which endpoints, which statuses."""
    with state.sessions()() as session:
        event = session.get(Event, event_id)
        if event is None:
            raise EventNotFound(f"no event {event_id!r}")
        fanout = [
            {**delivery_view(delivery), "endpoint_url": url}
            for delivery, url in session.execute(
                select(Delivery, Endpoint.url)
                .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
                .where(Delivery.event_id == event_id)
                .order_by(Delivery.id)
            )
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
    )


COMMANDS = [events]
