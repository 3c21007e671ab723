"""``stats``: the pipeline at a glance, for the first minute of an incident."""

from __future__ import annotations

import click

from outbox.clock import utcnow
from outbox.envelope import isoformat
from worker.cli.options import json_option
from worker.cli.output import print_json, print_listing, print_record
from worker.cli.state import State, pass_state
from worker.durations import format_duration, parse_duration
from worker.errors import InvalidDuration
from worker.ops.stats import DEFAULT_TOP, collect, stats_view


@click.command("stats")
@click.option("--window", default="1h", show_default=True, help="How far back recent figures look.")
@click.option("--top", type=click.IntRange(1, 100), default=DEFAULT_TOP, show_default=True)
@json_option
@pass_state
def stats(state: State, window: str, top: int, as_json: bool) -> None:
    """Outbox lag, deliveries due and in flight, recent successes and failures, and the
    slowest and most failing endpoints."""
    try:
        span = parse_duration(window)
    except InvalidDuration as exc:
        raise InvalidDuration(f"--window: {exc}") from None
    if span.total_seconds() <= 0:
        raise InvalidDuration("--window must be longer than zero")
    with state.sessions()() as session:
        snapshot = collect(session, now=utcnow(), window=span, top=top)
    view = stats_view(snapshot)
    if as_json:
        print_json(view)
        return
    last = format_duration(span)
    age = snapshot.oldest_waiting_age
    since = isoformat(snapshot.now - span)
    print_record(
        {
            f"last {last} is since": since[:10] + " " + since[11:19] + " UTC",
            "outbox: waiting events": snapshot.waiting_events,
            "outbox: oldest waiting": format_duration(age) if age is not None else "-",
            "deliveries: due now": snapshot.due,
            "deliveries: in flight": snapshot.in_flight,
            "deliveries: scheduled later": snapshot.scheduled,
            f"succeeded in last {last}": snapshot.finished["succeeded"],
            f"failed in last {last}": snapshot.finished["failed"],
            f"skipped in last {last}": snapshot.finished["skipped"],
            f"attempts in last {last}": f"{snapshot.attempts} ({snapshot.attempts_failed} failed)",
            "endpoints": ", ".join(f"{k} {v}" for k, v in snapshot.endpoints.items()),
        },
        title="catentio-webhooks stats",
    )
    columns = ["endpoint_id", "url", "failing_since", "attempts", "failed", "mean_ms", "max_ms"]
    headers = {
        "endpoint_id": "endpoint",
        "failing_since": "failing since",
        "mean_ms": "mean ms",
        "max_ms": "max ms",
    }
    drop = ("url", "max_ms", "mean_ms")
    if view["slowest_endpoints"]:
        print_listing(
            view["slowest_endpoints"], columns, title="slowest", headers=headers, drop_first=drop
        )
    if view["most_failing_endpoints"]:
        print_listing(
            view["most_failing_endpoints"],
            columns,
            title="most failing",
            headers=headers,
            drop_first=drop,
        )


COMMANDS = [stats]
