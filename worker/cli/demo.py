"""``demo``: the pipeline end to end on the embedded default, checked."""

from __future__ import annotations

import sys

import click

from worker.cli.output import console
from worker.demo.scenario import run_demo


@click.command("demo")
@click.option("--events", type=click.IntRange(1, 1000), default=36, show_default=True)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds to wait for every delivery to finish.",
)
def demo(events: int, timeout: float) -> None:
    """Start a verifying receiver on loopback, deliver events to a healthy, a flaky and a
    gone endpoint, print the history; exit 0 only if every outcome is as expected."""
    if not run_demo(console(), events=events, timeout=timeout):
        sys.exit(1)


COMMANDS = [demo]
