"""Telling the poller an event is waiting, in the producer's own transaction.

``publish()`` marks the session; just before it commits, one ``NOTIFY <channel>`` goes out
on PostgreSQL (the channel is the schema's name, see :mod:`outbox.namespace`). The server
delivers it to the poller's ``LISTEN`` only if the transaction commits, so a rollback
wakes nobody. The SQL function ``publish()`` sends the same notification.

The connection is marked as well (``connection.info[PUBLISHED]``), so a poller running in
the same process (the embedded mode, where SQLite has no ``NOTIFY``) can wake when that
connection commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from outbox.namespace import namespace_of

PUBLISHED = "catentio_webhooks.published"
"""Key in ``Session.info`` and ``Connection.info``: this transaction added an event."""


def announce(session: Session) -> None:
    """Note that the session's transaction added an event (see the module docstring)."""
    session.info[PUBLISHED] = True
    if not event.contains(session, "before_commit", _before_commit):
        event.listen(session, "before_commit", _before_commit)
        event.listen(session, "after_rollback", _after_rollback)


def _before_commit(session: Session) -> None:
    if not session.info.pop(PUBLISHED, False):
        return
    connection = session.connection()
    connection.info[PUBLISHED] = True
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_notify(namespace_of(connection).channel, "")))


def _after_rollback(session: Session, *_: Any) -> None:
    session.info.pop(PUBLISHED, None)
