"""``prune``: delete finished history older than a cut-off (retention)."""

from __future__ import annotations

from datetime import timedelta

import click

from outbox.clock import utcnow
from outbox.envelope import isoformat
from outbox.errors import ValidationError
from worker.cli.options import json_option
from worker.cli.output import print_json, progress_bar
from worker.cli.state import State, pass_state
from worker.durations import format_duration, parse_duration
from worker.errors import InvalidDuration
from worker.ops.retention import DEFAULT_BATCH_SIZE, PruneCounts, count_prunable, prune


def _older_than(text: str | None, default: timedelta | None) -> timedelta:
    if text is None:
        if default is None:
            raise ValidationError("give --older-than (e.g. 30d) or set CATENTIO_RETENTION")
        return default
    try:
        age = parse_duration(text)
    except InvalidDuration as exc:
        raise InvalidDuration(f"--older-than: {exc}") from None
    if age <= timedelta(0):
        raise InvalidDuration("--older-than must be longer than zero")
    return age


def _counts(counts: PruneCounts) -> str:
    return f"{counts.deliveries} deliveries, {counts.attempts} attempts, {counts.events} events"


@click.command("prune")
@click.option("--older-than", help="Age of what goes, e.g. 30d (default: CATENTIO_RETENTION).")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Rows per transaction.",
)
@json_option
@pass_state
def prune_command(
    state: State,
    older_than: str | None,
    dry_run: bool,
    yes: bool,
    batch_size: int,
    as_json: bool,
) -> None:
    """Delete deliveries that finished before the cut-off with their attempts, then
    dispatched events with no delivery left. Pending work is never touched; each batch
    is its own short transaction, so it can run beside live traffic and be stopped."""
    age = _older_than(older_than, state.settings.retention)
    cutoff = utcnow() - age
    sessions = state.sessions()
    with sessions() as session:
        planned = count_prunable(session, cutoff)
    what = f"finished before {isoformat(cutoff)} (older than {format_duration(age)})"
    if dry_run or planned == PruneCounts():
        if as_json:
            print_json({"dry_run": dry_run, "cutoff": isoformat(cutoff), **vars(planned)})
        else:
            verb = "would delete" if dry_run else "nothing to delete:"
            click.echo(f"{verb} {_counts(planned)} {what}")
        return
    if not yes:
        click.confirm(f"Delete {_counts(planned)} {what}?", abort=True, err=True)
    with progress_bar("pruning", planned.deliveries + planned.events) as advance:
        done, _complete = prune(
            sessions,
            cutoff=cutoff,
            batch_size=batch_size,
            progress=lambda c: advance(c.deliveries + c.events),
        )
    if as_json:
        print_json({"dry_run": False, "cutoff": isoformat(cutoff), **vars(done)})
    else:
        click.echo(f"deleted {_counts(done)} {what}")


COMMANDS = [prune_command]
