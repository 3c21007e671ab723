"""``portal link``: a signed, expiring URL into one workspace's portal."""

from __future__ import annotations

import click

from outbox.clock import utcnow
from outbox.envelope import isoformat
from worker.cli.options import json_option
from worker.cli.output import print_json
from worker.cli.state import State, pass_state
from worker.durations import parse_duration
from worker.portal.keys import portal_secrets
from worker.portal.links import mint_link
from worker.portal.tokens import Tokens


@click.group()
def portal() -> None:
    """The web portal (served by the API process at /portal)."""


@portal.command("link")
@click.option("--workspace", required=True, help="The one workspace the link opens.")
@click.option(
    "--ttl", help="How long the link can be opened: 15m, 1h, 2d (default 1h, at most 7d)."
)
@click.option("--read-only", is_flag=True, help="The session may look but not act.")
@json_option
@pass_state
def portal_link(
    state: State, workspace: str, ttl: str | None, read_only: bool, as_json: bool
) -> None:
    """Mint a portal link. Anyone holding it can open the workspace's portal until it
    expires: hand it over like a password. Opening it starts a session of its own
    (CATENTIO_PORTAL_SESSION_TTL, 8h by default)."""
    settings = state.settings
    link = mint_link(
        settings,
        Tokens(portal_secrets(settings)),
        workspace_id=workspace,
        now=utcnow(),
        ttl=parse_duration(ttl) if ttl else None,
        read_only=read_only,
    )
    if as_json:
        print_json(
            {
                "url": link.url,
                "workspace_id": link.workspace_id,
                "read_only": link.read_only,
                "expires_at": isoformat(link.expires_at),
            }
        )
        return
    click.echo(link.url)
    mode = "read-only, " if link.read_only else ""
    click.echo(
        f"({mode}workspace {link.workspace_id}, until {isoformat(link.expires_at)})", err=True
    )


COMMANDS = [portal]
