"""``endpoints``: register receivers, watch their health, switch them off and on."""

from __future__ import annotations

import sys
from typing import Any

import click
from sqlalchemy.orm import Session

from outbox.clock import utcnow
from outbox.errors import ValidationError
from outbox.models import DeliveryStatus, Endpoint
from worker.cli import options
from worker.cli.options import json_option, parse_json_object, split_values
from worker.cli.output import print_json, print_jsonl, print_listing, print_record, progress_bar
from worker.cli.replay import run_bulk, tell_workers
from worker.cli.state import State, pass_state
from worker.endpoints.registry import (
    ORDERINGS,
    PARALLEL,
    EndpointChanges,
    check_deletion,
    create_endpoint,
    delete_endpoint,
    deliveries_by_status,
    endpoint_page,
    get_endpoint,
    update_endpoint,
)
from worker.endpoints.signing import SCHEMES
from worker.endpoints.switches import (
    disable_endpoint,
    enable_endpoint,
    resume_endpoint,
    set_paused,
)
from worker.ops.activity import endpoint_activity
from worker.ops.history import DeliveryFilter
from worker.ops.replay import DEFAULT_BATCH_SIZE
from worker.ops.views import endpoint_health_view, endpoint_view


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
@click.option(
    "--filter",
    "filter_text",
    help='Payload filter (JSON), e.g. \'{"eq": ["status", "failed"]}\': only matching events.',
)
@click.option(
    "--ordering",
    type=click.Choice(ORDERINGS),
    default=PARALLEL,
    show_default=True,
    help="fifo: one delivery in flight, in event order; a failing one blocks the rest.",
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
    filter_text: str | None,
    ordering: str,
    as_json: bool,
) -> None:
    """Register an endpoint. Its secret is printed this once; store it with the receiver."""
    payload_filter = parse_json_object(filter_text, "--filter") if filter_text else None
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
            payload_filter=payload_filter,
            ordering=ordering,
            max_header_bytes=state.settings.max_header_bytes,
            allowed_networks=state.settings.allowed_networks,
        )
    view = endpoint_view(created.endpoint)
    if as_json:
        print_json({**view, "secret": created.secret})
        return
    print_record(view, title="endpoint created")
    kind = "public key (whpk_)" if scheme == "v1a" else "signing secret"
    click.echo(f"\n{kind}, shown only now: {created.secret}")


def _with_activity(session: Session, rows: list[Endpoint]) -> list[dict[str, Any]]:
    activity = endpoint_activity(session, [e.id for e in rows], now=utcnow())
    return [endpoint_health_view(endpoint, activity[endpoint.id]) for endpoint in rows]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


@endpoints.command("list")
@click.option("--workspace", help="Only this workspace.")
@options.page_options
@options.format_options
@pass_state
def endpoints_list(
    state: State,
    workspace: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    as_jsonl: bool,
) -> None:
    """List endpoints, newest first, with their health (never their secrets): success
    rate over the last hour and day, consecutive failures, pending and in-flight
    deliveries. Pages are keyset: pass the last id shown as --after."""
    fmt = options.pick_format(as_json, as_jsonl)
    sessions = state.sessions()
    if fmt is options.Format.JSONL:
        left = limit
        while left > 0:
            size = min(500, left)
            with sessions() as session:
                page = endpoint_page(session, workspace_id=workspace, limit=size, after=cursor)
                print_jsonl(_with_activity(session, page))
            left -= len(page)
            if len(page) < size:
                return
            cursor = page[-1].id
        return
    with sessions() as session:
        page = endpoint_page(session, workspace_id=workspace, limit=limit + 1, after=cursor)
        more = len(page) > limit
        rows = _with_activity(session, page[:limit])
    if fmt is options.Format.JSON:
        print_json(rows)
        return
    if not rows:
        click.echo("no endpoints match")
        return
    for row in rows:
        row["ok_hour"] = _percent(row["success_rate_hour"])
        row["ok_day"] = _percent(row["success_rate_day"])
    print_listing(
        rows,
        [
            "id",
            "workspace_id",
            "url",
            "state",
            "consecutive_failures",
            "ok_hour",
            "ok_day",
            "pending",
            "in_flight",
        ],
        headers={
            "workspace_id": "workspace",
            "consecutive_failures": "failures",
            "ok_hour": "ok 1h",
            "ok_day": "ok 24h",
            "in_flight": "in flight",
        },
        drop_first=("ok_day", "in_flight", "workspace_id", "pending", "ok_hour"),
    )
    if more:
        click.echo(f"more: --after {rows[-1]['id']}")


@endpoints.command("show")
@click.argument("endpoint_id")
@json_option
@pass_state
def endpoints_show(state: State, endpoint_id: str, as_json: bool) -> None:
    """Show one endpoint, its health and its deliveries by status."""
    with state.sessions()() as session:
        view = _with_activity(session, [get_endpoint(session, endpoint_id)])[0]
        view["deliveries"] = deliveries_by_status(session, endpoint_id)
    if as_json:
        print_json(view)
        return
    view["success_rate_hour"] = _percent(view["success_rate_hour"])
    view["success_rate_day"] = _percent(view["success_rate_day"])
    print_record(view, title=endpoint_id)


@endpoints.command("disable")
@click.argument("endpoint_id")
@click.option("--reason", help="Why (shown in endpoints show).")
@pass_state
def endpoints_disable(state: State, endpoint_id: str, reason: str | None) -> None:
    """Stop delivering: new and due deliveries end `skipped` (replayable later)."""
    with state.sessions()() as session, session.begin():
        changed = disable_endpoint(
            session,
            endpoint_id,
            reason=reason,
            now=utcnow(),
            notify=state.settings.operational_events,
        )
    click.echo(f"disabled {endpoint_id}" if changed else f"{endpoint_id} was already disabled")


@endpoints.command("enable")
@click.argument("endpoint_id")
@click.option(
    "--replay-skipped/--no-replay-skipped",
    default=None,
    help="Replay the deliveries skipped while it was disabled (asked when not given).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before replaying.")
@click.option("--rate", "rate_text", help="Replay at most this many per second (50/s).")
@pass_state
def endpoints_enable(
    state: State,
    endpoint_id: str,
    replay_skipped: bool | None,
    yes: bool,
    rate_text: str | None,
) -> None:
    """Deliver again, with a fresh failure record; offers to replay what was skipped."""
    rate = options.rate(rate_text)
    with state.sessions()() as session, session.begin():
        changed = enable_endpoint(session, endpoint_id, now=utcnow())
        skipped = deliveries_by_status(session, endpoint_id)[DeliveryStatus.SKIPPED]
    click.echo(f"enabled {endpoint_id}" if changed else f"{endpoint_id} was already enabled")
    if not skipped or replay_skipped is False:
        if skipped:
            click.echo(f"{skipped} skipped deliveries left as they are")
        return
    if replay_skipped is None:
        if not sys.stdin.isatty():
            click.echo(
                f"{skipped} deliveries were skipped while it was disabled; replay them with: "
                f"catentio-webhooks replay --endpoint {endpoint_id} --status skipped"
            )
            return
        if not click.confirm(f"Replay the {skipped} deliveries skipped while it was disabled?"):
            return
        yes = True
    selection = DeliveryFilter(endpoint_id=endpoint_id, statuses=(DeliveryStatus.SKIPPED,))
    run_bulk(
        state,
        selection,
        dry_run=False,
        yes=yes,
        rate=rate,
        batch_size=DEFAULT_BATCH_SIZE,
        as_json=False,
    )


@endpoints.command("pause")
@click.argument("endpoint_id")
@pass_state
def endpoints_pause(state: State, endpoint_id: str) -> None:
    """Hold deliveries without spending their attempts (for a receiver's maintenance)."""
    with state.sessions()() as session, session.begin():
        changed = set_paused(session, endpoint_id, True, now=utcnow())
    click.echo(f"paused {endpoint_id}" if changed else f"{endpoint_id} was already paused")


@endpoints.command("resume")
@click.argument("endpoint_id")
@pass_state
def endpoints_resume(state: State, endpoint_id: str) -> None:
    """Deliver again after a pause; held deliveries are sent now."""
    released = resume_endpoint(state.sessions(), endpoint_id, now=utcnow())
    if released is None:
        click.echo(f"{endpoint_id} was not paused")
        return
    _, note = tell_workers(state.settings, released)
    click.echo(f"resumed {endpoint_id}; {len(released)} held deliveries released ({note})")


@endpoints.command("update")
@click.argument("endpoint_id")
@click.option("--url", help="New http(s) URL.")
@click.option(
    "--events",
    "events",
    multiple=True,
    help="Replace the event type filters; repeat or comma-separate.",
)
@click.option(
    "--header",
    "--headers",
    "headers",
    multiple=True,
    help="Replace the custom headers: 'Name: value', repeated.",
)
@click.option("--clear-headers", is_flag=True, help="Remove every custom header.")
@click.option("--description", help="Free text for people ('' clears it).")
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=0),
    help="Deliveries in flight to it (0: back to CATENTIO_MAX_CONCURRENCY).",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0),
    help="Deliveries per second (0: no limit of its own).",
)
@click.option(
    "--filter",
    "filter_text",
    help="Replace the payload filter (JSON); '{}' removes it.",
)
@click.option(
    "--ordering",
    type=click.Choice(ORDERINGS),
    help="fifo: one delivery in flight, in event order; parallel: up to its limit.",
)
@json_option
@pass_state
def endpoints_update(
    state: State,
    endpoint_id: str,
    url: str | None,
    events: tuple[str, ...],
    headers: tuple[str, ...],
    clear_headers: bool,
    description: str | None,
    max_concurrency: int | None,
    rate_limit: float | None,
    filter_text: str | None,
    ordering: str | None,
    as_json: bool,
) -> None:
    """Change the URL, the event filters, the custom headers, the limits, the payload
    filter or the ordering."""
    if headers and clear_headers:
        raise ValidationError("--header and --clear-headers cannot be used together")
    changes = EndpointChanges(
        url=url,
        event_types=split_values(events) if events else None,
        headers={} if clear_headers else (_headers(headers) if headers else None),
        description=description,
        max_concurrency=max_concurrency,
        rate_limit=rate_limit,
        payload_filter=parse_json_object(filter_text, "--filter") if filter_text else None,
        ordering=ordering,
    )
    with state.sessions()() as session, session.begin():
        endpoint = update_endpoint(
            session,
            endpoint_id,
            changes,
            now=utcnow(),
            max_header_bytes=state.settings.max_header_bytes,
            allowed_networks=state.settings.allowed_networks,
        )
        view = endpoint_view(endpoint)
    if as_json:
        print_json(view)
    else:
        print_record(view, title=f"updated {endpoint_id}")


@endpoints.command("delete")
@click.argument("endpoint_id")
@click.option("--force", is_flag=True, help="Delete even with deliveries still pending.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def endpoints_delete(state: State, endpoint_id: str, force: bool, yes: bool) -> None:
    """Delete an endpoint with its deliveries and their attempts (refused while
    deliveries are pending, unless --force)."""
    sessions = state.sessions()
    with sessions() as session:
        total = check_deletion(session, endpoint_id, force=force)
    if not yes:
        click.confirm(
            f"Delete {endpoint_id} and its {total} deliveries with their attempts?",
            abort=True,
            err=True,
        )
    with progress_bar("deleting", total) as advance:
        deleted = delete_endpoint(sessions, endpoint_id, force=force, progress=advance)
    click.echo(f"deleted {endpoint_id} and {deleted} deliveries")


COMMANDS = [endpoints]
