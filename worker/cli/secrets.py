"""``secrets``: the encryption keys that protect endpoint secrets at rest."""

from __future__ import annotations

import click

from worker.cli.state import State, pass_state
from worker.endpoints.secretbox import generate_key, reencrypt_secrets


@click.group("secrets")
def secrets_group() -> None:
    """Encryption of endpoint secrets at rest."""


@secrets_group.command("generate-key")
def secrets_generate_key() -> None:
    """Print a new key for CATENTIO_ENCRYPTION_KEYS (put it first; keep old ones after)."""
    click.echo(generate_key())


@secrets_group.command("reencrypt")
@pass_state
def secrets_reencrypt(state: State) -> None:
    """Re-encrypt every endpoint secret under the newest key (the first one listed)."""
    box = state.box()
    with state.sessions()() as session, session.begin():
        count = reencrypt_secrets(session, box)
    click.echo(f"re-encrypted {count} secrets under the newest key")


COMMANDS = [secrets_group]
