"""``catentio-webhooks portal link``: a signed link that opens one workspace's portal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from tests.support.cli import Invoke
from worker.portal.tokens import Tokens

SECRET = "cli-portal-secret-0123456789abcdefghijklmnop"


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def test_portal_link_prints_a_url_that_opens_the_workspace(cli: Invoke) -> None:
    """The URL starts with CATENTIO_PORTAL_URL and its token grants the workspace for the TTL."""
    before = datetime.now(UTC)
    result = cli(
        "portal",
        "link",
        "--workspace",
        "ws_a",
        "--ttl",
        "15m",
        CATENTIO_PORTAL_SECRET=SECRET,
        CATENTIO_PORTAL_URL="https://hooks.example.com",
    )
    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert url.startswith("https://hooks.example.com/portal/open?token=")
    grant = Tokens((SECRET,)).open_link(_token(url), now=datetime.now(UTC))
    assert grant.workspace_id == "ws_a" and not grant.read_only
    assert before + timedelta(minutes=14) < grant.expires_at <= before + timedelta(minutes=16)


def test_portal_link_json_and_read_only(cli: Invoke) -> None:
    """--json prints one object; --read-only links open read-only sessions."""
    result = cli(
        "portal",
        "link",
        "--workspace",
        "ws_b",
        "--read-only",
        "--json",
        CATENTIO_PORTAL_SECRET=SECRET,
    )
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["workspace_id"] == "ws_b" and view["read_only"] is True
    assert view["url"].startswith("http://127.0.0.1:8080/portal/open?token=")
    grant = Tokens((SECRET,)).open_link(_token(view["url"]), now=datetime.now(UTC))
    assert grant.read_only


def test_portal_link_refuses_bad_input_with_one_line(cli: Invoke) -> None:
    """A bad workspace id or a TTL beyond seven days: exit 2, one error line, no URL."""
    for args in (("--workspace", "not ok!"), ("--workspace", "ws_a", "--ttl", "30d")):
        result = cli("portal", "link", *args, CATENTIO_PORTAL_SECRET=SECRET)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: ")
        assert "token=" not in result.stdout
