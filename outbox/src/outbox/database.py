"""Engines and sessions for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import math
import time
from typing import Any, TypeVar

from sqlalchemy import Select, create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from outbox.namespace import DEFAULT_SCHEMA, bind

T = TypeVar("T")

DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for the write lock before giving up."""

PING_AFTER_IDLE = 1.0
"""Seconds a pooled PostgreSQL connection may sit unused before it is pinged when it
is next checked out."""


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


def make_engine(
    url: str,
    *,
    schema: str = DEFAULT_SCHEMA,
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
    ping_after: float = PING_AFTER_IDLE,
    **kwargs: Any,
) -> Engine:
    """An engine for ``url`` with the settings this project depends on, reaching our
    tables in ``schema`` (see :mod:`outbox.namespace`).

    SQLite: WAL journal (readers never wait for writers), a busy timeout, foreign keys
    on, and ``BEGIN IMMEDIATE`` for transactions that ask for it with
    :func:`lock_for_write`. PostgreSQL: a pooled connection that sat unused for longer
    than ``ping_after`` seconds is pinged when it is checked out (and replaced if the
    server dropped it), so a restarted server costs one reconnect, not one failed
    delivery, while a connection in steady use costs no extra round trip per
    transaction (a drop in between fails that one transaction as an outage, which its
    caller retries); ``connect_timeout`` (seconds) bounds the wait for a server that
    accepts TCP and never answers, and ``statement_timeout`` (seconds) has the server
    cancel any statement that runs longer.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return bind(_sqlite_engine(parsed, **kwargs), schema)
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
    if connect_timeout is not None:
        # libpq counts whole seconds (and treats 1 as 2).
        connect_args.setdefault("connect_timeout", max(2, math.ceil(connect_timeout)))
    if statement_timeout is not None:
        given = parsed.query.get("options", "")
        option = f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"
        connect_args["options"] = (
            f"{given if isinstance(given, str) else ' '.join(given)} {option}".strip()
        )
    engine = create_engine(parsed, connect_args=connect_args, **kwargs)
    event.listen(engine, "connect", _custom_plans)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_after)
    return bind(engine, schema)


def _custom_plans(dbapi_connection: Any, _record: Any) -> None:
    """Plan every statement for its parameters (``plan_cache_mode``, PostgreSQL 12+).

    psycopg prepares a statement after a few executions, and the server may then switch
    it to a generic plan, one that cannot see the parameters. Our tables are skewed (one
    endpoint with 100,000 pending deliveries, the rest with none; a LIMIT of 40): the
    generic plan of a pull read all of an endpoint's pending deliveries through
    ``ix_deliveries_due`` and sorted them (100 ms at 10,000), where the plan for the
    actual values reads 40 entries of ``ix_deliveries_backlog``. Planning costs tens of
    microseconds a statement; the parse is still saved."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_custom_plan")
    dbapi_connection.commit()  # a SET in a transaction rolled back would be undone


_IDLE_SINCE = "catentio_idle_since"


def _ping_when_idle(engine: Engine, after: float) -> None:
    """Ping a connection on checkout only if it was checked in ``after`` seconds ago or
    more: SQLAlchemy's ``pool_pre_ping`` pings on every checkout, a round trip per
    transaction on paths that run hundreds of them a second."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < after:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out another (a new one).
            raise DisconnectionError(f"pooled connection dropped: {exc}") from exc


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


IN_INDEX_ORDER = (
    "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off; SET LOCAL jit = off"
)
"""PostgreSQL, sent first in a transaction (one round trip, for the rest of it) whose
``LIMIT`` read must walk an index in its order: statistics that expect a handful of rows
(a table never analysed, or analysed before a burst) make the planner take all of them
with a bitmap scan and sort them instead, a cost that grows with what is waiting. With
sorts off, a statement that cannot do without one is costed past ``jit_above_cost``, and
compiling it took 110 ms (the claim's advisory locks): no JIT for the transaction either,
whose short statements never gain from it."""

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


def is_outage(exc: SQLAlchemyError) -> bool:
    """Whether ``exc`` means the database is unreachable or not answering (connection
    refused or lost, a timeout, the pool exhausted), as opposed to a statement it
    refused because of what was in it (a constraint, a value it cannot store)."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def skip_locked(session: Session, query: Select[T]) -> Select[T]:
    """``query`` with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, for a batch claim that
    several processes make at once: each takes rows the others have not locked, none
    waits. On SQLite the transaction's write lock (:func:`lock_for_write`) serialises
    the claims instead, and the query is left as it is."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (rows are handed to callers)."""
    return sessionmaker(engine, expire_on_commit=False)
