"""What every command shares: the settings, and a database opened on first use."""

from __future__ import annotations

from dataclasses import dataclass, field

import click
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from outbox.database import is_sqlite
from worker.endpoints.secretbox import SecretBox, open_secret_box
from worker.runtime import ensure_schema, open_database
from worker.settings import Settings


@dataclass
class State:
    """Passed to commands as ``click``'s context object."""

    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)
    _sessions: sessionmaker[Session] | None = field(default=None, repr=False)
    _box: SecretBox | None = field(default=None, repr=False)

    def sessions(self) -> sessionmaker[Session]:
        """The session factory; the embedded SQLite schema is migrated on first use."""
        if self._sessions is None:
            self._engine, self._sessions = open_database(self.settings)
            ensure_schema(self._engine, migrate=is_sqlite(self.settings.database_url))
        return self._sessions

    def engine(self) -> Engine:
        """The engine (opening the database if needed)."""
        self.sessions()
        assert self._engine is not None
        return self._engine

    def box(self) -> SecretBox:
        """The secret box for endpoint secrets."""
        if self._box is None:
            self._box = open_secret_box(self.settings.encryption_keys, self.settings.database_url)
        return self._box

    def close(self) -> None:
        """Dispose of the engine, if one was opened."""
        if self._engine is not None:
            self._engine.dispose()


pass_state = click.make_pass_decorator(State)
