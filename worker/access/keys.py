"""API keys: ``cat_ak_`` + 256 random bits, shown once, stored as their SHA-256.

A key is looked up by its hash (a unique index), so checking one is one indexed read
and no stored value could ever be replayed as a key. SHA-256 rather than a slow
password hash is enough: the key is random and long, not something a person chose.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from outbox import ids
from outbox.clock import Clock, utcnow
from outbox.database import lock_for_write
from outbox.envelope import isoformat
from outbox.errors import ValidationError
from outbox.models import ApiKey
from outbox.validation import check_workspace_id
from worker.access.errors import AuthenticationFailed
from worker.access.principal import Principal, Scope
from worker.errors import NotFound

KEY_PREFIX = "cat_ak_"
"""Every API key starts with this, so a leaked one is recognisable (and scannable)."""

LAST_USED_RESOLUTION = timedelta(minutes=5)
"""``last_used_at`` is written at most this often per key, not on every request."""

MAX_NAME_LENGTH = 200
"""Longest key name."""


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A freshly minted key: the row, and the key itself (shown this once)."""

    record: ApiKey
    key: str


def create_key(
    session: Session,
    *,
    workspace_id: str | None,
    scope: str = Scope.WRITE,
    name: str | None = None,
    clock: Clock = utcnow,
) -> NewKey:
    """Mint a key for ``workspace_id`` (None: every workspace) and add it to ``session``."""
    if workspace_id is not None:
        check_workspace_id(workspace_id)
    try:
        checked = Scope(scope)
    except ValueError:
        raise ValidationError(f"scope must be read or write, not {scope!r}") from None
    if name is not None and len(name) > MAX_NAME_LENGTH:
        raise ValidationError(f"key name is longer than {MAX_NAME_LENGTH} characters")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        id=ids.new_id(ids.API_KEY),
        workspace_id=workspace_id,
        name=name,
        scope=checked.value,
        key_hash=hash_key(key),
        hint=key[-4:],
        created_at=clock(),
    )
    session.add(record)
    return NewKey(record, key)


def list_keys(session: Session, *, workspace_id: str | None = None) -> list[ApiKey]:
    """Keys, newest first (revoked ones too), optionally of one workspace only."""
    query = select(ApiKey).order_by(ApiKey.id.desc())
    if workspace_id is not None:
        query = query.where(ApiKey.workspace_id == workspace_id)
    return list(session.scalars(query))


def revoke_key(session: Session, key_id: str, *, clock: Clock = utcnow) -> bool:
    """Revoke a key; False if it already was. Raises ``NotFound`` for an unknown id."""
    record = session.get(ApiKey, key_id)
    if record is None:
        raise NotFound(f"no API key {key_id!r}")
    if record.revoked_at is not None:
        return False
    record.revoked_at = clock()
    return True


def authenticate(
    sessions: sessionmaker[Session],
    key: str,
    *,
    now: datetime,
    session: Session | None = None,
) -> Principal:
    """The principal of a live key, or :class:`AuthenticationFailed`.

    The key is read in ``session`` when given (the request's own, so a read request is
    one transaction) or in a session of its own. ``last_used_at``, when it is stale, is
    written in a separate short transaction that takes the write lock first (so it waits
    its turn on SQLite instead of failing to upgrade a read snapshot).
    """
    if not key.startswith(KEY_PREFIX):
        raise AuthenticationFailed("the Bearer credential is not a cat_ak_ API key")
    query = select(ApiKey).where(ApiKey.key_hash == hash_key(key))
    if session is not None:
        record = session.scalars(query).one_or_none()
    else:
        with sessions() as own:
            record = own.scalars(query).one_or_none()
    if record is None or record.revoked_at is not None:
        raise AuthenticationFailed("unknown or revoked API key")
    stale = now - LAST_USED_RESOLUTION
    if record.last_used_at is None or record.last_used_at <= stale:
        with sessions() as writer, writer.begin():
            lock_for_write(writer)
            writer.execute(
                update(ApiKey)
                .where(
                    ApiKey.id == record.id,
                    or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= stale),
                )
                .values(last_used_at=now)
            )
    return Principal(key_id=record.id, workspace_id=record.workspace_id, scope=Scope(record.scope))


def key_is_live(session: Session, key_id: str) -> bool:
    """Whether the key exists and is not revoked (a portal session opened with it
    lasts only while it is)."""
    revoked = session.execute(select(ApiKey.revoked_at).where(ApiKey.id == key_id)).one_or_none()
    return revoked is not None and revoked[0] is None


def key_view(record: ApiKey) -> dict[str, object]:
    """A key as people see it: never the key, only its last four characters (hint)."""
    return {
        "id": record.id,
        "workspace_id": record.workspace_id,
        "all_workspaces": record.workspace_id is None,
        "name": record.name,
        "scope": record.scope,
        "hint": record.hint,
        "created_at": isoformat(record.created_at),
        "last_used_at": isoformat(record.last_used_at) if record.last_used_at else None,
        "revoked_at": isoformat(record.revoked_at) if record.revoked_at else None,
    }
