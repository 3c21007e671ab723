"""Keys that embedded mode generates for itself, in 0600 files beside the SQLite database.

Without ``CATENTIO_ENCRYPTION_KEYS`` the embedded database keeps its Fernet key in
``<database>.key``; without ``CATENTIO_PORTAL_SECRET``, the portal's signing secret in
``<database>.portal-key``. Every process opening the same database file reads the same
key from there. The file is created exclusively (``O_EXCL``), so two processes starting
at once agree on one key instead of each writing its own. With PostgreSQL nothing is
generated: several hosts must share the key, so it has to be configured.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import structlog
from sqlalchemy.engine import make_url

from outbox.database import normalize_url

log = structlog.get_logger("worker.keyfiles")


def sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite database URL; None for PostgreSQL or in-memory SQLite."""
    url = make_url(str(normalize_url(database_url)))
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database))


def key_file_for(database_url: str, suffix: str) -> Path | None:
    """Where embedded mode keeps a generated key: the SQLite file's path + ``suffix``."""
    database = sqlite_file(database_url)
    return None if database is None else Path(str(database) + suffix)


def read_or_generate(path: Path, generate: Callable[[], str], *, name: str, variable: str) -> str:
    """The key in ``path``; on first use a new one from ``generate``, written with mode
    0600 and announced once (``<name>.key_generated``, naming ``variable``)."""
    key = generate()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    log.warning(
        f"{name}.key_generated",
        path=str(path),
        hint=f"set {variable} to manage the key yourself",
    )
    return key
