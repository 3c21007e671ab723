"""``db upgrade`` and ``db current``: the schema."""

from __future__ import annotations

import click

from outbox.migrate import current_revision, head_revision, upgrade
from worker.cli.state import State, pass_state
from worker.runtime import open_database


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_state
def db_upgrade(state: State) -> None:
    """Migrate the schema to the latest revision (the Procfile's release step)."""
    engine, _ = open_database(state.settings)
    try:
        upgrade(engine)
        click.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


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
