"""``check``: can this installation work? (database, migrations, broker, keys)"""

from __future__ import annotations

import sys

import click

from worker.cli.options import json_option
from worker.cli.output import print_json
from worker.cli.state import State, pass_state
from worker.ops.checks import run_checks


@click.command("check")
@json_option
@pass_state
def check(state: State, as_json: bool) -> None:
    """Check the database (reachable, migrated to head), the broker and the encryption
    keys (they open the stored secrets); one line per check, exit 0 if all pass, else 1.

    Made for a systemd ExecStartPre, a container HEALTHCHECK or a release-phase check.
    """
    checks = run_checks(state.settings)
    healthy = all(c.ok for c in checks)
    if as_json:
        print_json({"ok": healthy, "checks": [c.as_dict() for c in checks]})
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            click.echo(f"{'ok' if c.ok else 'FAIL':<4}  {c.name:<{width}}  {c.detail}")
    sys.exit(0 if healthy else 1)


COMMANDS = [check]
