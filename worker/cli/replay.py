"""``replay``: send deliveries again — one, an event's, or thousands after an outage.

``replay delivery ID`` and ``replay event ID`` are subcommands; ``replay --endpoint ID
[--status …] [--since …]`` without one is the bulk replay. Every form re-opens the same
delivery rows (same ``webhook-id``, attempt numbers continue, trigger ``replay``) and
leaves deliveries that are already pending alone, so running it twice sends nothing
extra.
"""

from __future__ import annotations

import sys

import click
from click.core import ParameterSource
from sqlalchemy.orm import Session

from outbox.clock import utcnow
from outbox.envelope import isoformat
from outbox.errors import ValidationError
from outbox.models import DeliveryStatus
from worker.cli import options
from worker.cli.deliveries import delivery_row
from worker.cli.options import split_values
from worker.cli.output import print_json, print_listing, progress_bar
from worker.cli.state import State, pass_state
from worker.delivery import bell
from worker.delivery.bell import Reach, Ringing
from worker.durations import format_duration
from worker.ops.history import DeliveryFilter, get_delivery
from worker.ops.replay import (
    DEFAULT_BATCH_SIZE,
    bulk_replay,
    bulk_selection,
    preview_bulk,
    replay_delivery,
    replay_event,
)
from worker.ops.views import delivery_view
from worker.settings import Settings

EXIT_INTERRUPTED = 130
"""Exit code of a bulk replay stopped with Ctrl-C (128 + SIGINT)."""

BULK_DEFAULT_STATUSES = (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
"""What a bulk replay re-opens unless --status says otherwise."""

_BULK_OPTIONS = (
    "endpoint_id",
    "status_values",
    "since",
    "until",
    "types",
    "dry_run",
    "yes",
    "rate_text",
    "batch_size",
    "as_json",
)


def ringing_note(settings: Settings, ringing: Ringing) -> str:
    """What ringing did, for people: whether, and when, the deliveries go out."""
    within = format_duration(settings.sweep_delay)
    if ringing.reach is Reach.NOTHING:
        return "nothing new to send"
    if ringing.reach is Reach.EMBEDDED:
        return (
            "embedded mode (no REDIS_URL): the running `catentio-webhooks run` picks them up "
            f"within about {within} (its sweeper)"
        )
    if ringing.reach is Reach.UNREACHABLE:
        return (
            f"broker unreachable ({ringing.error}); the deliveries are pending and the poller's "
            f"sweeper rings them within about {within} of the broker's return"
        )
    return "the workers were notified"


def tell_workers(settings: Settings, delivery_ids: list[str]) -> tuple[bool, str]:
    """Ring the workers for ``delivery_ids``; (whether they were rung, a note for people)."""
    ringing = bell.ring_now(settings, delivery_ids)
    return ringing.rung, ringing_note(settings, ringing)


@click.group("replay", invoke_without_command=True)
@click.option("--endpoint", "endpoint_id", help="Bulk: replay this endpoint's deliveries.")
@options.status_option
@options.window_options
@click.option("--type", "types", multiple=True, help="Bulk: only these event types (or run.*).")
@click.option("--dry-run", is_flag=True, help="Bulk: print the count and a sample; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Bulk: do not ask for confirmation.")
@click.option("--rate", "rate_text", help="Bulk: at most this many per second (50/s, 3000/m).")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Bulk: deliveries re-opened per transaction.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def replay(
    ctx: click.Context,
    endpoint_id: str | None,
    status_values: tuple[str, ...],
    since: str | None,
    until: str | None,
    types: tuple[str, ...],
    dry_run: bool,
    yes: bool,
    rate_text: str | None,
    batch_size: int,
    as_json: bool,
) -> None:
    """Send deliveries again, re-opening the same rows (same webhook-id, attempt numbers
    continue, trigger "replay"). Deliveries already pending are left alone, so the same
    replay twice sends nothing extra.

    \b
    One delivery:      replay delivery DLV_ID
    An event:          replay event EVT_ID [--current-subscribers]
    Bulk (an outage):  replay --endpoint EP_ID [--status failed,skipped]
                              [--since 6h] [--until T] [--type run.*]
                              [--dry-run] [--yes] [--rate 50/s]

    A bulk replay asks for confirmation unless --yes, works in batches, and can be
    interrupted (Ctrl-C) and run again: what it re-opened no longer matches.
    """
    given = [
        name
        for name in _BULK_OPTIONS
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    ]
    if ctx.invoked_subcommand is not None:
        if given:
            flags = ", ".join("--" + n.removesuffix("_text").replace("_", "-") for n in given)
            raise ValidationError(
                f"{flags}: options of the bulk replay (`replay --endpoint ID …`) cannot go "
                f"with `replay {ctx.invoked_subcommand}`; put its own options after it"
            )
        return
    if endpoint_id is None:
        raise ValidationError(
            "bulk replay needs --endpoint ID (or use `replay delivery ID` / `replay event ID`)"
        )
    state = ctx.find_object(State)
    assert state is not None
    rate = options.rate(rate_text)
    with state.sessions()() as session:
        selection = bulk_selection(
            session,
            endpoint_id=endpoint_id,
            statuses=options.statuses(status_values, default=BULK_DEFAULT_STATUSES),
            since=options.moment("--since", since),
            until=options.moment("--until", until),
            event_types=split_values(types),
        )
    run_bulk(
        state,
        selection,
        dry_run=dry_run,
        yes=yes,
        rate=rate,
        batch_size=batch_size,
        as_json=as_json,
    )


def run_bulk(
    state: State,
    selection: DeliveryFilter,
    *,
    dry_run: bool,
    yes: bool,
    rate: float | None,
    batch_size: int,
    as_json: bool,
) -> None:
    """Count, show a sample, confirm, then re-open the selection batch by batch."""
    sessions = state.sessions()
    with sessions() as session:
        preview = preview_bulk(session, selection)
    matched = preview.matched
    sample = [delivery_view(d) for d in preview.sample]
    what = f"{', '.join(selection.statuses)} deliveries to {selection.endpoint_id}"
    if dry_run or matched == 0:
        if as_json:
            print_json({"dry_run": dry_run, "matched": matched, "sample": sample})
            return
        click.echo(f"{'would replay' if dry_run else 'nothing to replay:'} {matched} {what}")
        if sample:
            print_listing(
                [delivery_row(d) for d in preview.sample],
                ["id", "created_at", "event_type", "status", "attempts", "last"],
                title=f"newest {len(sample)} of {matched}",
                headers={"created_at": "created"},
                drop_first=("created_at", "attempts"),
            )
        return
    if not yes:
        click.confirm(f"Replay {matched} {what}?", abort=True, err=True)
    with bulk_replay(sessions, state.settings, selection, rate=rate, batch_size=batch_size) as job:
        try:
            with progress_bar("replaying", matched) as advance:
                job.run(progress=advance)
        except KeyboardInterrupt:
            click.echo(
                f"interrupted: {job.reopened} of {matched} re-opened (they will be sent); "
                + _rest_hint(state, selection, job.last_id),
                err=True,
            )
            sys.exit(EXIT_INTERRUPTED)
    ringing = job.ringing()
    note = ringing_note(state.settings, ringing)
    if as_json:
        print_json(
            {
                "dry_run": False,
                "matched": matched,
                "reopened": job.reopened,
                "rung": ringing.rung,
                "note": note,
            }
        )
        return
    click.echo(f"re-opened {job.reopened} of {matched} {what}; {note}")


def _rest_hint(state: State, selection: DeliveryFilter, last_id: str | None) -> str:
    """How to replay the rest after an interruption. Re-opened deliveries leave a
    failed/skipped selection, so running it again is right; but once they succeed again
    they are back in a ``succeeded`` selection, and running it again would send them a
    second time."""
    if DeliveryStatus.SUCCEEDED not in selection.statuses:
        return "run the same command again to replay the rest"
    if last_id is None:
        return "nothing was re-opened yet: run the same command again"
    with state.sessions()() as session:
        created = get_delivery(session, last_id).created_at
    since = isoformat(created)
    return (
        "the selection includes succeeded deliveries, so running it unchanged would replay "
        f"the re-opened ones again once they succeed; to replay only the rest, add --since "
        f"{since} (created at or after the last one re-opened)"
    )


def _dry_run_rollback(session: Session, dry_run: bool) -> None:
    """A dry run does the work in its transaction, then rolls it back: what it reports
    is exactly what a real run would do."""
    if dry_run:
        session.rollback()


@replay.command("delivery")
@click.argument("delivery_id")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pass_state
def replay_one(state: State, delivery_id: str, dry_run: bool, as_json: bool) -> None:
    """Send one delivery again (refused while its endpoint is disabled)."""
    with state.sessions()() as session, session.begin():
        outcome = replay_delivery(session, delivery_id, now=utcnow())
        _dry_run_rollback(session, dry_run)
    reopened = outcome.reopened and not dry_run
    rung, note = tell_workers(state.settings, [delivery_id] if reopened else [])
    if not outcome.reopened:
        note = "already pending: it will be sent by itself, nothing to do"
    elif dry_run:
        note = "dry run: nothing changed"
    if as_json:
        print_json(
            {
                "delivery_id": delivery_id,
                "dry_run": dry_run,
                "reopened": outcome.reopened,
                "rung": rung,
                "note": note,
            }
        )
        return
    if outcome.reopened:
        verb = "would re-open" if dry_run else "re-opened"
        paused = " (the endpoint is paused: it waits for resume)" if outcome.endpoint_paused else ""
        click.echo(f"{verb} {delivery_id} to {outcome.endpoint_url}{paused}")
    click.echo(note)


@replay.command("event")
@click.argument("event_id")
@click.option(
    "--current-subscribers",
    is_flag=True,
    help="Send to the enabled endpoints that match the event today (new subscribers "
    "included, unsubscribed ones left out), not to those it was delivered to.",
)
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pass_state
def replay_event_command(
    state: State, event_id: str, current_subscribers: bool, dry_run: bool, as_json: bool
) -> None:
    """Send an event again to the endpoints it was delivered to."""
    with state.sessions()() as session, session.begin():
        outcome = replay_event(
            session, event_id, now=utcnow(), current_subscribers=current_subscribers
        )
        _dry_run_rollback(session, dry_run)
    rung, note = tell_workers(state.settings, [] if dry_run else outcome.to_ring)
    view = {
        "event_id": event_id,
        "dry_run": dry_run,
        "reopened": outcome.reopened,
        "created": outcome.created,
        "already_pending": outcome.already_pending,
        "disabled": outcome.disabled,
        "unsubscribed": outcome.unsubscribed,
        "rung": rung,
        "note": "dry run: nothing changed" if dry_run else note,
    }
    if as_json:
        print_json(view)
        return
    lines = {
        ("re-opened", "would re-open"): outcome.reopened,
        ("created for new subscribers", "would create for new subscribers"): outcome.created,
        ("left alone, already pending", "would leave alone, already pending"): (
            outcome.already_pending
        ),
        ("refused, endpoint disabled", "would refuse, endpoint disabled"): outcome.disabled,
        ("left out, endpoint no longer subscribed", "would leave out, no longer subscribed"): (
            outcome.unsubscribed
        ),
    }
    for (done, planned), delivery_ids in lines.items():
        if delivery_ids:
            click.echo(f"{planned if dry_run else done}: {', '.join(delivery_ids)}")
    click.echo(str(view["note"]))


COMMANDS = [replay]
