"""``endpoints``: register and look at receivers."""

from __future__ import annotations

import click
from sqlalchemy import select

from outbox.errors import ValidationError
from outbox.models import Endpoint
from worker.cli.options import json_option, split_values
from worker.cli.output import print_json, print_record, print_table
from worker.cli.state import State, pass_state
from worker.endpoints import SCHEMES, create_endpoint, get_endpoint
from worker.views import endpoint_view


@click.group()
def endpoints() -> None:
    """Receivers: where events are delivered."""


def _headers(values: tuple[str, ...]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep:
            raise ValidationError(f"--header {value!r} must look like 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


@endpoints.command("add")
@click.option("--workspace", required=True, help="Workspace the endpoint belongs to.")
@click.option("--url", required=True, help="http(s) URL that receives the POSTs.")
@click.option(
    "--events",
    "events",
    multiple=True,
    required=True,
    help="Event types: exact (run.succeeded), prefix (run.*) or '*'. Repeat or comma-separate.",
)
@click.option(
    "--scheme",
    type=click.Choice(SCHEMES),
    default="v1",
    show_default=True,
    help="v1: HMAC-SHA256 (whsec_); v1a: Ed25519 (receiver gets a whpk_).",
)
@click.option("--header", "headers", multiple=True, help="Custom header 'Name: value'.")
@click.option("--description", help="Free text for people.")
@click.option("--max-concurrency", type=click.IntRange(min=1), help="Deliveries in flight.")
@click.option(
    "--rate-limit", type=click.FloatRange(min=0, min_open=True), help="Deliveries per second."
)
@json_option
@pass_state
def endpoints_add(
    state: State,
    workspace: str,
    url: str,
    events: tuple[str, ...],
    scheme: str,
    headers: tuple[str, ...],
    description: str | None,
    max_concurrency: int | None,
    rate_limit: float | None,
    as_json: bool,
) -> None:
    """Register an endpoint. Its secret is printed this once; store it with the receiver."""
    with state.sessions()() as session, session.begin():
        created = create_endpoint(
            session,
            state.box(),
            workspace_id=workspace,
            url=url,
            event_types=split_values(events),
            scheme=scheme,
            headers=_headers(headers),
            description=description,
            max_concurrency=max_concurrency,
            rate_limit=rate_limit,
        )
    view = endpoint_view(created.endpoint)
    if as_json:
        print_json({**view, "secret": created.secret})
        return
    print_record(view, title="endpoint created")
    kind = "public key (whpk_)" if scheme == "v1a" else "signing secret"
    click.echo(f"\n{kind}, shown only now: {created.secret}")


@endpoints.command("list")
@click.option("--workspace", help="Only this workspace.")
@json_option
@pass_state
def endpoints_list(state: State, workspace: str | None, as_json: bool) -> None:
    """List endpoints (never their secrets)."""
    query = select(Endpoint).order_by(Endpoint.id)
    if workspace:
        query = query.where(Endpoint.workspace_id == workspace)
    with state.sessions()() as session:
        rows = [endpoint_view(e) for e in session.scalars(query)]
    if as_json:
        print_json(rows)
        return
    print_table(
        rows,
        ["id", "workspace_id", "url", "event_types", "enabled", "consecutive_failures"],
        headers={"workspace_id": "workspace", "consecutive_failures": "failures"},
    )


@endpoints.command("show")
@click.argument("endpoint_id")
@json_option
@pass_state
def endpoints_show(state: State, endpoint_id: str, as_json: bool) -> None:
    """Show one endpoint."""
    with state.sessions()() as session:
        view = endpoint_view(get_endpoint(session, endpoint_id))
    if as_json:
        print_json(view)
    else:
        print_record(view, title=endpoint_id)


COMMANDS = [endpoints]
