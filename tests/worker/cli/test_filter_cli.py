"""``endpoints add|update --filter JSON``: payload filters from the command line."""

from __future__ import annotations

import json

FAILED_ONLY = {"and": [{"eq": ["status", "failed"]}, {"gte": ["attempt", 2]}]}


def test_cli_sets_and_clears_a_filter(cli) -> None:  # type: ignore[no-untyped-def]
    """endpoints add|update --filter JSON; a bad filter exits 2 and writes nothing."""
    bad = cli(
        "endpoints", "add", "--workspace", "ws_a", "--url", "https://example.com/h",
        "--events", "*", "--filter", '{"in": ["a", "b"]}',
    )  # fmt: skip
    assert bad.exit_code == 2
    assert "filter.in" in bad.output
    assert json.loads(cli("endpoints", "list", "--json").output) == []
    added = cli(
        "endpoints", "add", "--workspace", "ws_a", "--url", "https://example.com/h",
        "--events", "*", "--filter", json.dumps(FAILED_ONLY), "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    view = json.loads(added.output)
    assert view["filter"] == FAILED_ONLY
    updated = cli("endpoints", "update", view["id"], "--filter", "{}", "--json")
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.output)["filter"] is None
