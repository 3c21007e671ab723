"""``api-keys create|list|revoke`` and the ``api`` command's settings."""

from __future__ import annotations

import json

import pytest

from outbox.database import make_engine, make_session_factory
from worker.access.errors import AuthenticationFailed
from worker.access.keys import authenticate
from worker.access.principal import Scope
from worker.settings import Settings


def test_create_prints_the_key_once_and_it_authenticates(cli, migrated: str) -> None:  # type: ignore[no-untyped-def]
    """--json prints id and key; list never shows the key; revoke makes it fail."""
    result = cli("api-keys", "create", "--workspace", "ws_a", "--scope", "read", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["key"].startswith("cat_ak_")
    assert created["id"].startswith("ak_")
    assert created["scope"] == "read"
    engine = make_engine(migrated)
    sessions = make_session_factory(engine)
    try:
        principal = authenticate(sessions, created["key"], now=_now())
        assert principal.workspace_id == "ws_a"
        assert principal.scope is Scope.READ
        listed = cli("api-keys", "list", "--json")
        assert created["key"] not in listed.output
        assert json.loads(listed.output)[0]["id"] == created["id"]
        assert cli("api-keys", "revoke", created["id"]).exit_code == 0
        with pytest.raises(AuthenticationFailed):
            authenticate(sessions, created["key"], now=_now())
    finally:
        engine.dispose()


def test_admin_key_and_usage_errors(cli) -> None:  # type: ignore[no-untyped-def]
    """--all-workspaces mints an admin key; neither or both of the options is a usage error."""
    admin = json.loads(cli("api-keys", "create", "--all-workspaces", "--json").output)
    assert admin["all_workspaces"] is True
    assert admin["workspace_id"] is None
    neither = cli("api-keys", "create")
    assert neither.exit_code == 2
    both = cli("api-keys", "create", "--workspace", "ws_a", "--all-workspaces")
    assert both.exit_code == 2
    bad = cli("api-keys", "create", "--workspace", "not ok!")
    assert bad.exit_code == 2
    assert "workspace id" in bad.output
    missing = cli("api-keys", "revoke", "ak_nothing")
    assert missing.exit_code == 3


def test_port_is_honoured() -> None:
    """PORT (Procfile platforms) makes the API listen on 0.0.0.0:PORT."""
    settings = Settings.from_env({"PORT": "5123"})
    assert (settings.api_host, settings.api_port) == ("0.0.0.0", 5123)
    default = Settings.from_env({})
    assert (default.api_host, default.api_port) == ("127.0.0.1", 8080)


def test_bad_rate_limit_setting_is_refused() -> None:
    """A limit that `limits` cannot parse is a configuration error naming the variable."""
    from worker.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CATENTIO_API_READ_LIMIT"):
        Settings.from_env({"CATENTIO_API_READ_LIMIT": "lots"})


def _now():  # type: ignore[no-untyped-def]
    from outbox.clock import utcnow

    return utcnow()
