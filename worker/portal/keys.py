"""The portal's signing secrets: from ``CATENTIO_PORTAL_SECRET``, or in embedded mode a
key file generated beside the SQLite database (as the encryption key is).

Every process that serves the portal or mints links must hold the same secret; with
PostgreSQL (several hosts) it must therefore be configured, and it is refused otherwise.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import structlog
from sqlalchemy.engine import make_url

from outbox.database import normalize_url
from worker.errors import ConfigurationError
from worker.settings import Settings

log = structlog.get_logger("worker.portal.keys")

KEY_FILE_SUFFIX = ".portal-key"


def key_file_for(database_url: str) -> Path | None:
    """Where embedded mode keeps the generated portal secret: beside the SQLite file."""
    url = make_url(str(normalize_url(database_url)))
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database) + KEY_FILE_SUFFIX)


def portal_secrets(settings: Settings) -> tuple[str, ...]:
    """The secrets that sign portal links and sessions, newest first."""
    if settings.portal_secrets:
        return settings.portal_secrets
    path = key_file_for(settings.database_url)
    if path is None:
        if normalize_url(settings.database_url).get_backend_name() == "sqlite":
            return (secrets.token_urlsafe(32),)  # in-memory: lives as long as the process
        raise ConfigurationError(
            "CATENTIO_PORTAL_SECRET is required with a PostgreSQL database: every process "
            "serving the portal must share it (make one with "
            "`catentio-webhooks secrets generate-key`)"
        )
    key = secrets.token_urlsafe(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return (path.read_text().strip(),)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    log.warning(
        "portal.key_generated",
        path=str(path),
        hint="set CATENTIO_PORTAL_SECRET to manage the portal secret yourself",
    )
    return (key,)
