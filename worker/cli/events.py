"""``events``: publish into the outbox and look at events."""

from __future__ import annotations

import click
from sqlalchemy import select

from outbox.errors import EventNotFound
from outbox.models import Delivery, Event
from outbox.publish import publish
from worker.cli.options import json_option, parse_json_object
from worker.cli.output import print_json, print_record, print_table
from worker.cli.state import State, pass_state
from worker.views import delivery_view, event_view


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


@events.command("list")
@click.option("--workspace")
@click.option("--type", "event_type")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
@pass_state
def events_list(
    state: State, workspace: str | None, event_type: str | None, limit: int, as_json: bool
) -> None:
    """Newest events first."""
    query = select(Event).order_by(Event.id.desc()).limit(limit)
    if workspace:
        query = query.where(Event.workspace_id == workspace)
    if event_type:
        query = query.where(Event.type == event_type)
    with state.sessions()() as session:
        rows = [event_view(e) for e in session.scalars(query)]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["id", "workspace_id", "type", "created_at", "dispatched_at"])


@events.command("show")
@click.argument("event_id")
@json_option
@pass_state
def events_show(state: State, event_id: str, as_json: bool) -> None:
    """One event, its exact body and where it was delivered."""
    with state.sessions()() as session:
        event = session.get(Event, event_id)
        if event is None:
            raise EventNotFound(f"no event {event_id!r}")
        fanout = [
            delivery_view(d)
            for d in session.scalars(
                select(Delivery).where(Delivery.event_id == event_id).order_by(Delivery.id)
            )
        ]
    view = {**event_view(event, with_body=True), "deliveries": fanout}
    if as_json:
        print_json(view)
        return
    print_record({k: v for k, v in view.items() if k not in ("deliveries", "data")}, title=event_id)
    print_table(
        fanout, ["id", "endpoint_id", "status", "attempts", "last_status_code"], title="deliveries"
    )


COMMANDS = [events]
