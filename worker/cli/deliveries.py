"""``deliveries``: what was sent, and what came back."""

from __future__ import annotations

import click
from sqlalchemy import select

from outbox.errors import DeliveryNotFound
from outbox.models import Attempt, Delivery, DeliveryStatus
from worker.cli.options import json_option
from worker.cli.output import print_json, print_record, print_table
from worker.cli.state import State, pass_state
from worker.views import attempt_view, delivery_view


@click.group()
def deliveries() -> None:
    """Deliveries and their attempts."""


@deliveries.command("list")
@click.option("--workspace")
@click.option("--endpoint", "endpoint_id")
@click.option("--event", "event_id")
@click.option("--status", type=click.Choice(DeliveryStatus.ALL))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
@pass_state
def deliveries_list(
    state: State,
    workspace: str | None,
    endpoint_id: str | None,
    event_id: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Newest deliveries first."""
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if workspace:
        query = query.where(Delivery.workspace_id == workspace)
    if endpoint_id:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    if event_id:
        query = query.where(Delivery.event_id == event_id)
    if status:
        query = query.where(Delivery.status == status)
    with state.sessions()() as session:
        rows = [delivery_view(d) for d in session.scalars(query)]
    if as_json:
        print_json(rows)
        return
    print_table(
        rows,
        [
            "id",
            "event_type",
            "endpoint_id",
            "status",
            "attempts",
            "last_status_code",
            "next_attempt_at",
        ],
        headers={"last_status_code": "last", "next_attempt_at": "next attempt"},
    )


@deliveries.command("show")
@click.argument("delivery_id")
@json_option
@pass_state
def deliveries_show(state: State, delivery_id: str, as_json: bool) -> None:
    """One delivery with every attempt: request headers sent, response, timing."""
    with state.sessions()() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            raise DeliveryNotFound(f"no delivery {delivery_id!r}")
        attempts = [
            attempt_view(a)
            for a in session.scalars(
                select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.number)
            )
        ]
    view = {**delivery_view(delivery), "attempt_history": attempts}
    if as_json:
        print_json(view)
        return
    print_record(delivery_view(delivery), title=delivery_id)
    print_table(
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
    )
    for attempt in attempts:
        body = attempt["response_body"]
        if body:
            shown = body if len(body) <= 500 else body[:500] + "…"
            click.echo(f"attempt {attempt['number']} response body: {shown}")


COMMANDS = [deliveries]
