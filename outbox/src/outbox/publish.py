"""``publish()``: how a producer puts an event in the outbox, inside its own transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from outbox import ids, tracecontext
from outbox.clock import Clock, utcnow
from outbox.database import lock_for_write
from outbox.envelope import render
from outbox.errors import IdempotencyKeyConflict, PayloadTooLarge, ValidationError
from outbox.models import Event
from outbox.notify import announce
from outbox.validation import check_event_type, check_workspace_id

DEFAULT_MAX_BODY_BYTES = 256 * 1024
"""Largest rendered body accepted at publish time (256 KiB)."""

MAX_IDEMPOTENCY_KEY_LENGTH = 255
"""Longest accepted idempotency key (the column's width)."""


def publish(
    session: Session,
    *,
    workspace_id: str,
    type: str,
    data: Mapping[str, Any],
    idempotency_key: str | None = None,
    request_id: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    clock: Clock = utcnow,
    trace_context: Mapping[str, str] | None = None,
) -> Event:
    """Validate an event, render its body once and add it to the caller's session.

    Nothing is sent until the caller commits; if the caller rolls back, the event never
    existed. With an ``idempotency_key``, publishing the same key in the same workspace
    again returns the event already stored (a unique constraint decides, so two
    concurrent producers cannot both insert)::

        with Session(engine) as session, session.begin():
            run.status = "succeeded"
            publish(session, workspace_id="ws_1", type="run.succeeded",
                    data={"runId": run.id}, idempotency_key=f"run-{run.id}-succeeded")

    On PostgreSQL the commit also wakes the poller (``NOTIFY``, see :mod:`outbox.notify`).
    The session's engine must reach our schema: :func:`outbox.bind` it when the schema is
    not the default one, or when the database is SQLite.

    The event remembers the producer's trace: by default the W3C trace context of the
    current OpenTelemetry span, when OpenTelemetry is installed and a span is current
    (``catentio-outbox`` does not depend on it); or the ``traceparent``/``tracestate`` of
    an explicit ``trace_context`` carrier (``{}`` stores none). The poller's fan-out span
    continues it. An invalid ``traceparent`` is dropped, never an error
    (:mod:`outbox.tracecontext`).

    Raises a :class:`~outbox.errors.ValidationError` subclass for bad input.
    """
    check_workspace_id(workspace_id)
    check_event_type(type)
    if idempotency_key is not None:
        _check_text("idempotency key", idempotency_key)
    if request_id is not None:
        _check_text("request id", request_id)

    created_at = clock()
    event_id = ids.new_id(ids.EVENT, now_ms=int(created_at.timestamp() * 1000))
    body = render(
        event_id=event_id,
        event_type=type,
        workspace_id=workspace_id,
        created_at=created_at,
        data=data,
        request_id=request_id,
    )
    size = len(body.encode("utf-8"))
    if size > max_body_bytes:
        raise PayloadTooLarge(f"rendered body is {size} bytes, over the {max_body_bytes} limit")

    event = Event(
        id=event_id,
        workspace_id=workspace_id,
        type=type,
        body=body,
        idempotency_key=idempotency_key,
        request_id=request_id,
        trace_context=(
            tracecontext.current()
            if trace_context is None
            else tracecontext.normalized(trace_context)
        ),
        created_at=created_at,
        dispatched_at=None,
    )
    if idempotency_key is None:
        session.add(event)
        announce(session)
        return event

    # SQLite: if publishing starts the transaction, take the write lock now, so a racing
    # producer waits for ours instead of failing to upgrade its read snapshot. A
    # transaction that already wrote holds the lock anyway.
    lock_for_write(session)
    existing = _find(session, workspace_id, idempotency_key)
    if existing is None:
        try:
            # A savepoint, so losing the race rolls back only this insert, not the
            # producer's own work in the same transaction.
            with session.begin_nested():
                session.add(event)
            announce(session)
            return event
        except IntegrityError:
            existing = _find(session, workspace_id, idempotency_key)
            if existing is None:
                raise
    if existing.type != type:
        raise IdempotencyKeyConflict(
            f"idempotency key {idempotency_key!r} was used for a {existing.type!r} event "
            f"({existing.id}) in this workspace"
        )
    return existing


def _find(session: Session, workspace_id: str, key: str) -> Event | None:
    query = select(Event).where(Event.workspace_id == workspace_id, Event.idempotency_key == key)
    return session.scalars(query).one_or_none()


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValidationError(
            f"{name} must be a non-empty string of at most {MAX_IDEMPOTENCY_KEY_LENGTH} chars"
        )
