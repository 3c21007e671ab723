"""``db upgrade`` and ``db current``: the schema."""

from __future__ import annotations

import click
import structlog

from outbox.migrate import current_revision, head_revision, known_revision, upgrade
from worker.cli.processes import stop_on_signals
from worker.cli.state import State, pass_state
from worker.errors import ConfigurationError
from worker.runtime import open_database

log = structlog.get_logger("worker.cli")


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option(
    "--hold/--no-hold",
    default=None,
    help="Stay up after migrating, until SIGTERM. Default: only when a local Procfile "
    "runner (honcho, foreman) started it, since they stop every process once one exits.",
)
@pass_state
def db_upgrade(state: State, hold: bool | None) -> None:
    """Migrate the schema to the latest revision (the Procfile's release step)."""
    engine, _ = open_database(state.settings)
    try:
        current = current_revision(engine)
        if current is not None and not known_revision(current):
            raise ConfigurationError(
                f"the database's alembic_version is at {current!r}, which is not a "
                "catentio-webhooks migration: the table belongs to newer code or to another "
                "application sharing this schema; point DATABASE_URL at a schema of its own"
            )
        upgrade(engine)
        click.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()
    runner = state.settings.procfile_process
    if hold or (hold is None and runner):
        # A release phase (Heroku and the like) must end; a local Procfile runner must
        # not see this process end, or it stops the poller and workers with it.
        stop = stop_on_signals()
        log.info("release.holding", process=runner, reason="a Procfile runner stops all on exit")
        stop.wait()


@db.command("current")
@pass_state
def db_current(state: State) -> None:
    """Print the schema revision of the database and of this code."""
    engine, _ = open_database(state.settings)
    try:
        click.echo(f"database: {current_revision(engine) or 'empty'}; code: {head_revision()}")
    finally:
        engine.dispose()


COMMANDS = [db]
