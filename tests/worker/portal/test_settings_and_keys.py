"""Portal settings and the portal secret: configured, or generated in embedded mode."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from worker.errors import ConfigurationError
from worker.portal.keys import key_file_for, portal_secrets
from worker.settings import Settings


def test_portal_settings_are_read_from_the_environment() -> None:
    """Secrets (newest first), URL, lifetimes and frame ancestors come from CATENTIO_PORTAL_*."""
    settings = Settings.from_env(
        {
            "CATENTIO_PORTAL_SECRET": "n" * 40 + ", " + "o" * 40,
            "CATENTIO_PORTAL_URL": "https://hooks.example.com/",
            "CATENTIO_PORTAL_LINK_TTL": "2h",
            "CATENTIO_PORTAL_SESSION_TTL": "30m",
            "CATENTIO_PORTAL_FRAME_ANCESTORS": "'self'  https://app.example.com",
        }
    )
    assert settings.portal_secrets == ("n" * 40, "o" * 40)
    assert settings.portal_url == "https://hooks.example.com"
    assert settings.portal_link_ttl == timedelta(hours=2)
    assert settings.portal_session_ttl == timedelta(minutes=30)
    assert settings.portal_frame_ancestors == "'self' https://app.example.com"
    assert "n" * 40 not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CATENTIO_PORTAL_URL", "ftp://x"),
        ("CATENTIO_PORTAL_LINK_TTL", "8d"),
        ("CATENTIO_PORTAL_LINK_TTL", "soon"),
        ("CATENTIO_PORTAL_SESSION_TTL", "0s"),
        ("CATENTIO_PORTAL_FRAME_ANCESTORS", "https://a.example; script-src *"),
        ("CATENTIO_PORTAL_FRAME_ANCESTORS", "https://a.example\r\nSet-Cookie: x=1"),
    ],
)
def test_bad_portal_settings_are_refused_naming_the_variable(name: str, value: str) -> None:
    """A value that cannot work, or that would break out of the CSP header, is refused."""
    with pytest.raises(ConfigurationError, match=name.split("_")[-1].lower() + "|" + name):
        Settings.from_env({name: value})


def test_embedded_mode_generates_a_private_key_file_once(tmp_path: Path) -> None:
    """Without CATENTIO_PORTAL_SECRET, SQLite gets a 0600 key file beside the database,
    and every later process reads the same secret from it."""
    url = f"sqlite:///{tmp_path / 'hooks.sqlite3'}"
    first = portal_secrets(Settings(database_url=url))
    path = key_file_for(url)
    assert path is not None and path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert portal_secrets(Settings(database_url=url)) == first
    assert len(first[0]) >= 32


def test_postgresql_without_a_portal_secret_is_refused() -> None:
    """Several hosts must share the secret, so it cannot be generated on one of them."""
    with pytest.raises(ConfigurationError, match="CATENTIO_PORTAL_SECRET is required"):
        portal_secrets(Settings(database_url="postgresql://db.example/hooks"))
    configured = Settings(database_url="postgresql://db.example/hooks", portal_secrets=("k" * 40,))
    assert portal_secrets(configured) == ("k" * 40,)
