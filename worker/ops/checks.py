"""Is this installation able to work? One function per dependency, each a :class:`Check`.

The same checks serve ``catentio-webhooks check`` (a systemd ``ExecStartPre``, a
container ``HEALTHCHECK``, a release-phase check), the ``/readyz`` endpoint of every
long-running process (database and broker only: they are cheap) and start-up checks.
Each one answers within a bounded time and never raises for the condition it checks:
a failure is a :class:`Check` with ``ok=False`` and a one-line reason, never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from outbox.database import is_sqlite, make_engine, normalize_url
from outbox.errors import CatentioError
from outbox.migrate import current_revision, head_revision, known_revision
from outbox.models import Endpoint
from worker.endpoints.secretbox import SecretBox, generate_key, key_file_for, open_secret_box
from worker.errors import ConfigurationError, SchemaNotReady
from worker.settings import Settings

DEFAULT_CHECK_TIMEOUT = 5.0
"""Seconds a check waits for the database or the broker before calling it unreachable."""

SECRET_SAMPLE = 20
"""Endpoints whose stored secrets the key check opens (the most recently created)."""


@dataclass(frozen=True)
class Check:
    """One check's verdict: ``name`` (database, migrations, broker, encryption_keys),
    whether it passed, a one-line ``detail``, and how long it took."""

    name: str
    ok: bool
    detail: str
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """The check as JSON-ready values."""
        return {
            "check": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def _timed(name: str, probe: Callable[[], tuple[bool, str]]) -> Check:
    started = time.perf_counter()
    ok, detail = probe()
    return Check(name, ok, detail, time.perf_counter() - started)


def require_database(engine: Engine) -> None:
    """Raise (SQLAlchemy's error) unless the database accepts a connection and a
    statement: the probe behind :func:`database_reachable`, start-up and outages."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def database_reachable(engine: Engine) -> Check:
    """The database answers a trivial query."""

    def probe() -> tuple[bool, str]:
        try:
            require_database(engine)
        except SQLAlchemyError as exc:
            return False, f"unreachable: {_first_line(exc)}"
        return True, f"reachable ({engine.dialect.name})"

    return _timed("database", probe)


def require_schema_at_head(engine: Engine) -> None:
    """Raise ``SchemaNotReady`` unless the schema is at this code's head revision, or
    ``ConfigurationError`` when it is at a revision this code does not know (newer
    code, or another application's table in our schema): waiting cannot fix that."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if current is not None and not known_revision(current):
        raise ConfigurationError(
            f"the database's alembic_version is at {current!r}, which is not a "
            "catentio-webhooks migration (newer code, or another application's "
            "table in the same schema)"
        )
    raise SchemaNotReady(
        f"database schema is at {current or 'nothing'}, this code needs {head}: run "
        "`catentio-webhooks db upgrade` (the Procfile's release step)"
    )


def schema_at_head(engine: Engine) -> Check:
    """The schema is migrated to the newest revision this code knows."""

    def probe() -> tuple[bool, str]:
        try:
            require_schema_at_head(engine)
        except SQLAlchemyError as exc:
            return False, f"cannot read the revision: {_first_line(exc)}"
        except CatentioError as exc:
            return False, str(exc)
        return True, f"at head ({head_revision()})"

    return _timed("migrations", probe)


def broker_client(
    settings: Settings, *, timeout: float = DEFAULT_CHECK_TIMEOUT
) -> redis.Redis[bytes]:
    """A Redis client for the broker checks, with bounded connect and read waits."""
    if not settings.redis_url:
        raise ConfigurationError("no REDIS_URL: the broker is in-process")
    return redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout
    )


def broker_reachable(client: redis.Redis[bytes] | None) -> Check:
    """The Redis broker answers ``PING`` (``client`` None: embedded, the broker lives in
    the process and is always there)."""

    def probe() -> tuple[bool, str]:
        if client is None:
            return True, "in-process (embedded: no REDIS_URL)"
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            return False, f"unreachable: {_first_line(exc)}"
        return True, "reachable (redis)"

    return _timed("broker", probe)


def require_keys_open_secrets(sessions: sessionmaker[Session], box: SecretBox) -> tuple[int, int]:
    """Decrypt every stored secret of the :data:`SECRET_SAMPLE` newest endpoints with
    the configured keys; raise ``ConfigurationError`` naming the endpoint and
    ``CATENTIO_ENCRYPTION_KEYS`` at the first that does not open. Returns the secrets
    opened and the endpoints sampled (0: nothing stored yet, nothing to check)."""
    with sessions() as session:
        rows = session.execute(
            select(Endpoint.id, Endpoint.secrets)
            .order_by(Endpoint.created_at.desc())
            .limit(SECRET_SAMPLE)
        ).all()
    opened = 0
    for endpoint_id, stored in rows:
        for entry in stored or ():
            try:
                box.decrypt(entry["secret"])
                opened += 1
            except ConfigurationError:
                raise ConfigurationError(
                    f"the secret of {endpoint_id} cannot be decrypted with any of "
                    "CATENTIO_ENCRYPTION_KEYS: set the key it was encrypted with (newest "
                    "first, the old ones after it while `secrets reencrypt` moves them)"
                ) from None
    return opened, len(rows)


def keys_open_secrets(sessions: sessionmaker[Session], box: SecretBox) -> Check:
    """``CATENTIO_ENCRYPTION_KEYS`` decrypts the stored secrets of the
    :data:`SECRET_SAMPLE` newest endpoints (every secret of each, expired ones too)."""

    def probe() -> tuple[bool, str]:
        try:
            opened, sampled = require_keys_open_secrets(sessions, box)
        except SQLAlchemyError as exc:
            return False, f"cannot read the stored secrets: {_first_line(exc)}"
        except ConfigurationError as exc:
            return False, str(exc)
        if not sampled:
            return True, "no endpoints yet (nothing to open)"
        return True, f"open the stored secrets ({opened} of {sampled} endpoints sampled)"

    return _timed("encryption_keys", probe)


def run_checks(settings: Settings, *, timeout: float = DEFAULT_CHECK_TIMEOUT) -> list[Check]:
    """Every check, in order: database, migrations, broker, encryption keys. The checks
    that need the database say so instead of waiting again when it is unreachable.
    Checking changes nothing: no SQLite file or key file is created."""
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:
        return [
            Check("database", False, f"no database file at {missing} yet"),
            Check("migrations", False, "not checked: the database is unreachable"),
            broker_check(settings, timeout=timeout),
            Check("encryption_keys", False, "not checked: the database is unreachable"),
        ]
    if is_sqlite(settings.database_url):
        engine = make_engine(settings.database_url, schema=settings.db_schema)
    else:
        # libpq counts whole seconds.
        bounded = {"connect_timeout": max(1, round(timeout))}
        engine = make_engine(settings.database_url, schema=settings.db_schema, connect_args=bounded)
    try:
        database = database_reachable(engine)
        checks = [database]
        if database.ok:
            checks.append(schema_at_head(engine))
        else:
            checks.append(Check("migrations", False, "not checked: the database is unreachable"))
        checks.append(broker_check(settings, timeout=timeout))
        blocked = None
        if not database.ok:
            blocked = "the database is unreachable"
        elif not checks[1].ok:
            blocked = "the schema is not at head"
        checks.append(_keys_check(settings, engine, blocked=blocked))
        return checks
    finally:
        engine.dispose()


def broker_check(settings: Settings, *, timeout: float = DEFAULT_CHECK_TIMEOUT) -> Check:
    """:func:`broker_reachable` with a client of its own, closed afterwards."""
    client = broker_client(settings, timeout=timeout) if settings.redis_url else None
    try:
        return broker_reachable(client)
    finally:
        if client is not None:
            client.close()


def _missing_sqlite_file(database_url: str) -> Path | None:
    url = normalize_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(str(url.database))
    return None if path.exists() else path


def _keys_check(settings: Settings, engine: Engine, *, blocked: str | None) -> Check:
    key_file = key_file_for(settings.database_url)
    try:
        if not settings.encryption_keys and key_file is not None and not key_file.exists():
            # Embedded with no key yet: a throwaway key, so the check writes nothing; it
            # opens no stored secret, which is right: without the key they are lost.
            box = SecretBox([generate_key()])
        else:
            box = open_secret_box(settings.encryption_keys, settings.database_url)
    except ConfigurationError as exc:
        return Check("encryption_keys", False, str(exc))
    if blocked is not None:
        return Check("encryption_keys", False, f"not checked: {blocked}")
    return keys_open_secrets(sessionmaker(engine), box)
