"""Bad arguments get one clear line on stderr and a documented non-zero exit code:
2 for bad usage or invalid input, 3 for an id that does not exist."""

from __future__ import annotations

import click
import pytest

from tests.support.cli import Invoke
from worker.cli.endpoints import endpoints_update

CASES = [
    (["deliveries", "show", "dlv_nope"], 3, "no delivery 'dlv_nope'"),
    (["replay", "delivery", "dlv_nope"], 3, "no delivery 'dlv_nope'"),
    (["replay", "event", "evt_nope"], 3, "no event 'evt_nope'"),
    (["replay", "--endpoint", "ep_nope", "--yes"], 3, "no endpoint 'ep_nope'"),
    (["endpoints", "disable", "ep_nope"], 3, "no endpoint 'ep_nope'"),
    (["endpoints", "delete", "ep_nope", "--yes"], 3, "no endpoint 'ep_nope'"),
    (["deliveries", "list", "--since", "5x"], 2, "--since: '5x' is neither an ISO time"),
    (["events", "list", "--until", "yesterday"], 2, "--until: 'yesterday' is neither"),
    (["prune", "--older-than", "soon"], 2, "--older-than: 'soon' is not a duration"),
    (["prune"], 2, "give --older-than (e.g. 30d) or set CATENTIO_RETENTION"),
    (["stats", "--window", "forever"], 2, "--window: 'forever' is not a duration"),
    (["deliveries", "list", "--json", "--jsonl"], 2, "--json and --jsonl cannot be used"),
    (["deliveries", "list", "--status", "lost"], 2, "--status: status 'lost' is not one of"),
    (["deliveries", "list", "--after", "nope"], 2, "--after 'nope' is not a dlv_… cursor"),
    (["deliveries", "list", "--since", "1h", "--until", "2h"], 2, "--until must be later"),
    (["events", "list", "--type", "Run Done"], 2, "event filter 'Run Done'"),
    (["replay"], 2, "bulk replay needs --endpoint ID"),
    (["replay", "--endpoint", "ep_x", "--status", "pending"], 2, "already waiting to be sent"),
    (["replay", "--endpoint", "ep_x", "--rate", "fast"], 2, "--rate 'fast' must look like"),
    (["replay", "--dry-run", "delivery", "dlv_x"], 2, "--dry-run: options of the bulk replay"),
    (["endpoints", "update", "ep_x"], 2, "nothing to update"),
]


@pytest.mark.parametrize(("args", "code", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_arguments_give_one_clear_line(
    cli: Invoke, args: list[str], code: int, message: str
) -> None:
    """Each mistake ends with its exit code and a single `error: …` line naming it."""
    result = cli(*args)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert result.stdout == ""


def test_nothing_to_update_names_every_option_that_changes_something(cli: Invoke) -> None:
    """The hint lists every option of `endpoints update` but --json: one added later
    (a filter, the ordering) without the hint fails here."""
    options = {
        param.opts[0]
        for param in endpoints_update.params
        if isinstance(param, click.Option) and param.opts[0] != "--json"
    }
    result = cli("endpoints", "update", "ep_x")
    assert result.exit_code == 2
    hint = result.stderr.strip()
    missing = {option for option in options if option not in hint}
    assert not missing, f"the hint leaves out {sorted(missing)}: {hint}"
