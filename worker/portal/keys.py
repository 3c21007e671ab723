"""The portal's signing secrets: from ``CATENTIO_PORTAL_SECRET``, or in embedded mode a
key file generated beside the SQLite database (as the encryption key is, see
:mod:`worker.keyfiles`).

Every process that serves the portal or mints links must hold the same secret; with
PostgreSQL (several hosts) it must therefore be configured, and it is refused otherwise.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from outbox.database import normalize_url
from worker import keyfiles
from worker.errors import ConfigurationError
from worker.settings import Settings

KEY_FILE_SUFFIX = ".portal-key"
"""Embedded mode's generated portal secret lives in ``<database>.portal-key``."""


def key_file_for(database_url: str) -> Path | None:
    """Where embedded mode keeps the generated portal secret: beside the SQLite file."""
    return keyfiles.key_file_for(database_url, KEY_FILE_SUFFIX)


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def portal_secrets(settings: Settings) -> tuple[str, ...]:
    """The secrets that sign portal links and sessions, newest first. Raises
    ``ConfigurationError`` for a PostgreSQL database without ``CATENTIO_PORTAL_SECRET``."""
    if settings.portal_secrets:
        return settings.portal_secrets
    if normalize_url(settings.database_url).get_backend_name() != "sqlite":
        raise ConfigurationError(
            "CATENTIO_PORTAL_SECRET is required with a PostgreSQL database: every process "
            "serving the portal or minting its links must share it (at least 32 characters; "
            "make one with `catentio-webhooks secrets generate-key`)"
        )
    path = key_file_for(settings.database_url)
    if path is None:  # in-memory SQLite: lives as long as the process, as its data does
        return (_new_secret(),)
    key = keyfiles.read_or_generate(
        path, _new_secret, name="portal", variable="CATENTIO_PORTAL_SECRET"
    )
    return (key,)
