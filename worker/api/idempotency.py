"""``Idempotency-Key``: a write sent twice does its work once.

The first request with a key (per workspace) records an in-flight marker with a hash of
the request (method, path, query and body); when it finishes its status and body are
stored, and for ``CATENTIO_IDEMPOTENCY_TTL`` (24 h) the same key gets the same answer
without the work being done again. The same key with another request answers
``422 IDEMPOTENCY_KEY_REUSED``; while the first is still in flight, ``409 CONFLICT``.
A response of 500 or more is not kept, so the client may retry. The records live in
the database, so every API process sees them; expired ones are deleted by
:meth:`IdempotencyStore.prune`, which the API process runs on a timer.

A stored body is encrypted with the secret box (``CATENTIO_ENCRYPTION_KEYS``): the
answer to creating an endpoint or rotating its secret carries the new secret, and a
minted portal link is a credential, so neither lies in the database in clear text for a
day. A retired key must stay in the list for one TTL after rotation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from outbox.database import lock_for_write
from outbox.models import IdempotencyRecord
from worker.api.errors import ApiError, Code
from worker.endpoints.secretbox import SecretBox

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
"""Longest accepted key (the column's width)."""


@dataclass(frozen=True)
class IdempotentRequest:
    """A write that carries an ``Idempotency-Key``."""

    key: str
    request_hash: str


@dataclass(frozen=True)
class StoredResponse:
    """What the first request with the key answered."""

    status: int
    body: str


def request_hash(method: str, path: str, query: str, body: bytes) -> str:
    """A digest of what the request asks for; JSON bodies are compared by value."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
        content = canonical.encode("utf-8")
    except ValueError:
        content = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode(), content):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def check_key(key: str) -> str:
    """``key`` if it is usable, or VALIDATION_ERROR naming the header."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApiError(
            Code.VALIDATION_ERROR,
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters",
            field=HEADER,
        )
    return key


class IdempotencyStore:
    """The records, in the database."""

    def __init__(self, sessions: sessionmaker[Session], *, ttl: timedelta, box: SecretBox) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._box = box

    def begin(
        self, workspace_id: str, request: IdempotentRequest, *, now: datetime
    ) -> StoredResponse | None:
        """Claim the key for this request (None: go ahead and do the work), or the stored
        response of an earlier identical request. Raises ``ApiError`` for a key that is
        in flight (409) or was used for another request (422)."""
        with self._sessions() as session, session.begin():
            lock_for_write(session)
            record = session.get(
                IdempotencyRecord, (workspace_id, request.key), with_for_update=True
            )
            if record is not None and record.expires_at <= now:
                session.delete(record)
                session.flush()
                record = None
            if record is None:
                try:
                    with session.begin_nested():
                        session.add(
                            IdempotencyRecord(
                                workspace_id=workspace_id,
                                key=request.key,
                                request_hash=request.request_hash,
                                created_at=now,
                                expires_at=now + self._ttl,
                            )
                        )
                    return None
                except IntegrityError:
                    # A concurrent request with the same key inserted first.
                    record = session.get(IdempotencyRecord, (workspace_id, request.key))
                    if record is None:
                        raise
            if record.request_hash != request.request_hash:
                raise ApiError(
                    Code.IDEMPOTENCY_KEY_REUSED,
                    f"{HEADER} {request.key!r} was used for a different request",
                    field=HEADER,
                )
            if record.response_status is None or record.response_body is None:
                raise ApiError(
                    Code.CONFLICT,
                    f"a request with {HEADER} {request.key!r} is still in progress",
                    field=HEADER,
                )
            return StoredResponse(record.response_status, self._box.decrypt(record.response_body))

    def finish(self, workspace_id: str, key: str, *, status: int, body: str) -> None:
        """Keep the response of the request that claimed the key; a 5xx is not kept,
        so the key can be used again."""
        with self._sessions() as session, session.begin():
            lock_for_write(session)
            record = session.get(IdempotencyRecord, (workspace_id, key))
            if record is None:
                return
            if status >= 500:
                session.delete(record)
                return
            record.response_status = status
            record.response_body = self._box.encrypt(body)

    def abandon(self, workspace_id: str, key: str) -> None:
        """Forget a claim whose request failed without an answer worth keeping."""
        with self._sessions() as session, session.begin():
            lock_for_write(session)
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.workspace_id == workspace_id, IdempotencyRecord.key == key
                )
            )

    def prune(self, *, now: datetime) -> int:
        """Delete expired records; returns how many."""
        with self._sessions() as session, session.begin():
            result = session.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
