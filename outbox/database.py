"""Engines and sessions for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

T = TypeVar("T")

DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for the write lock before giving up."""


def normalize_url(url: str) -> URL:
    """Turn the URL forms that platforms hand out into one SQLAlchemy can use.

    Procfile platforms give ``postgres://``; SQLAlchemy wants ``postgresql://`` and we
    want the psycopg 3 driver unless another one is named explicitly.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite(url: str | URL) -> bool:
    """Whether the URL names a SQLite database."""
    return make_url(str(url) if isinstance(url, URL) else url).get_backend_name() == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings this project depends on.

    SQLite: WAL journal (readers never wait for writers), a busy timeout, foreign keys
    on, and ``BEGIN IMMEDIATE`` for transactions that ask for it with
    :func:`lock_for_write`. PostgreSQL: pre-ping pooled connections so a restarted server
    costs one reconnect, not one failed delivery.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    memory = url.database in (None, "", ":memory:")
    connect_args: dict[str, Any] = {"check_same_thread": False}
    if memory:
        # One shared connection, or every thread would see its own empty database.
        kwargs.setdefault("poolclass", StaticPool)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {DEFAULT_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if not memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_IMMEDIATE = "catentio_sqlite_immediate"


def lock_for_write(session: Session) -> None:
    """Call first in a transaction that reads, then writes based on what it read.

    On SQLite this begins the transaction with ``BEGIN IMMEDIATE``, taking the write
    lock up front: two such transactions serialise (waiting up to the busy timeout)
    instead of one failing when it upgrades a read snapshot to a write. It is the SQLite
    stand-in for ``SELECT … FOR UPDATE``. On PostgreSQL it does nothing; use row locks.
    A transaction that already has its connection is left as it is.
    """
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return
    transaction = session.get_transaction()
    # SQLAlchemy has no public "has this transaction connected yet?"; asking for
    # execution options after it has would only warn and do nothing.
    if transaction is not None and bind in getattr(transaction, "_connections", {}):
        return
    session.connection(execution_options={_IMMEDIATE: True})


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (rows are handed to callers)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A Core connection in a transaction that reads, then writes based on what it read
    (SQLite: ``BEGIN IMMEDIATE``, see :func:`lock_for_write`); committed on exit.

    A connection the server dropped while it sat in the pool (the engine does not
    pre-ping on this path) fails the first statement; that is retried once on a fresh
    connection by :func:`retrying_once`, not by a round trip before every transaction.
    """
    with (
        engine.connect().execution_options(**{_IMMEDIATE: True}) as connection,
        connection.begin(),
    ):
        yield connection


def retrying_once(work: Callable[[], T]) -> T:
    """Run ``work`` (a whole transaction); if it failed because the connection was lost
    (the pool discarded it), run it once more on a new one."""
    try:
        return work()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return work()
