"""``endpoints rotate-secret``: a new signing secret, the old one signing through a grace.

Attaches itself to the ``endpoints`` group, so it has no top-level command of its own.
"""

from __future__ import annotations

import click

from outbox.clock import utcnow
from outbox.envelope import isoformat
from worker.cli.endpoints import endpoints
from worker.cli.options import json_option
from worker.cli.output import print_json
from worker.cli.state import State, pass_state
from worker.durations import format_duration, parse_duration
from worker.endpoints.rotation import DEFAULT_GRACE, rotate_secret
from worker.endpoints.signing import SCHEMES


@endpoints.command("rotate-secret")
@click.argument("endpoint_id")
@click.option(
    "--grace",
    default=format_duration(DEFAULT_GRACE),
    show_default=True,
    help="How long the current secret keeps signing next to the new one (0: stop now).",
)
@click.option(
    "--scheme",
    type=click.Choice(SCHEMES),
    help="Signing scheme of the new secret (default: the endpoint's own).",
)
@json_option
@pass_state
def endpoints_rotate_secret(
    state: State, endpoint_id: str, grace: str, scheme: str | None, as_json: bool
) -> None:
    """Add a new signing secret; the current one keeps signing until the grace ends.

    Requests carry both signatures meanwhile, so the receiver can switch whenever it is
    ready. The new secret (for v1a: the receiver's whpk_ public key) is printed this
    once; store it with the receiver.
    """
    with state.sessions()() as session, session.begin():
        rotation = rotate_secret(
            session,
            state.box(),
            endpoint_id,
            grace=parse_duration(grace),
            scheme=scheme,
            now=utcnow(),
        )
    until = isoformat(rotation.replaced_until) if rotation.replaced_until else None
    if as_json:
        print_json(
            {
                "endpoint_id": endpoint_id,
                "scheme": rotation.scheme,
                "secret": rotation.secret,
                "previous_secrets_sign_until": until,
            }
        )
        return
    kind = "public key (whpk_)" if rotation.scheme == "v1a" else "signing secret"
    click.echo(f"rotated the signing secret of {endpoint_id} (scheme {rotation.scheme})")
    if until:
        click.echo(f"the previous secret keeps signing until {until}")
    else:
        click.echo("no previous secret signs any more")
    click.echo(f"\nnew {kind}, shown only now: {rotation.secret}")


COMMANDS: list[click.Command] = []
"""Nothing at the top level: ``rotate-secret`` is part of ``endpoints``."""
