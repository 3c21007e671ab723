"""The tables: endpoints, events (the outbox), deliveries and attempts; and, for the
HTTP API, API keys, idempotency records and bulk replay runs.

They live in our own schema (:mod:`outbox.namespace`): the metadata declares the default
schema, and a bound engine translates it to the configured one.

The database is the truth: a delivery's state, its next attempt time and its lease all
live here. A broker message only says "look at delivery X now".
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from outbox.namespace import DEFAULT_SCHEMA
from outbox.types import JSONType, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(40)


class Base(DeclarativeBase):
    """Declarative base with constraint names that are the same on every database."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION, schema=DEFAULT_SCHEMA)


class DeliveryStatus(StrEnum):
    """The states of a delivery. ``skipped``: created while its endpoint was disabled."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


FINISHED_STATUSES = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
"""The statuses a delivery ends in (until a replay re-opens it)."""


class Trigger(StrEnum):
    """Why an attempt was made."""

    SCHEDULED = "scheduled"
    REPLAY = "replay"


class Endpoint(Base):
    """A receiver URL in one workspace, the event types it wants and how to sign for it."""

    __tablename__ = "endpoints"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(JSONType)
    # Signing: "v1" (HMAC-SHA256, whsec_) or "v1a" (Ed25519, whsk_). Each entry of
    # ``secrets`` is {"secret": <encrypted>, "expires_at": ISO time or null}; all
    # unexpired entries sign, which is how rotation keeps old receivers working.
    scheme: Mapped[str] = mapped_column(String(8), default="v1")
    secrets: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    headers: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    # A predicate over the event's ``data`` (worker.endpoints.predicate); NULL: every
    # event whose type matches.
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)

    max_concurrency: Mapped[int | None] = mapped_column(Integer)
    # NULL: deliveries in parallel; "fifo": at most one in flight, in event order, a
    # failing head holding back the ones behind it (worker.engine.claim).
    ordering: Mapped[str | None] = mapped_column(String(8))
    rate_limit: Mapped[float | None] = mapped_column(Float)

    # Health, kept by the delivery actor.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    probe_delivery_id: Mapped[str | None] = mapped_column(ID)
    probe_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Rate limit state (GCRA): the moment the next delivery would be on schedule.
    rate_tat: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Event(Base):
    """An outbox row: one state change, its body rendered once, exactly as it is sent."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key", name="uq_events_idempotency"),
        # The poller's query: the oldest waiting events.
        Index(
            "ix_events_waiting",
            "id",
            postgresql_where=text("dispatched_at IS NULL"),
            sqlite_where=text("dispatched_at IS NULL"),
        ),
        Index("ix_events_workspace_created", "workspace_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(128), index=True)
    body: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(255))
    # The W3C trace context of the publishing span ({"traceparent": ..., "tracestate":
    # ...}), or NULL: the poller and the workers continue the producer's trace.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    deliveries: Mapped[list[Delivery]] = relationship(back_populates="event", lazy="raise")


class Delivery(Base):
    """One event to one endpoint: its state, its schedule and its lease."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_deliveries_event_endpoint"),
        # The sweeper's query: pending deliveries that are due, oldest first.
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # A pull's query: one endpoint's pending deliveries, oldest due first (read
        # ``n`` entries deep, not sorted from all of the endpoint's backlog).
        Index(
            "ix_deliveries_backlog",
            "endpoint_id",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_deliveries_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_deliveries_status_id", "status", "id"),
        Index("ix_deliveries_workspace_id_id", "workspace_id", "id"),
        Index("ix_deliveries_completed_at", "completed_at"),
        # The concurrency limit counts an endpoint's deliveries under a live lease
        # (``lease_until > now``: the range starts past the expired ones).
        Index(
            "ix_deliveries_in_flight",
            "endpoint_id",
            "lease_until",
            postgresql_where=text("lease_until IS NOT NULL"),
            sqlite_where=text("lease_until IS NOT NULL"),
        ),
        # Deliveries held back by a policy, found again when it lifts.
        Index(
            "ix_deliveries_held",
            "endpoint_id",
            "held_by",
            postgresql_where=text("held_by IS NOT NULL"),
            sqlite_where=text("held_by IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    workspace_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(128))

    status: Mapped[str] = mapped_column(String(16))
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts since the delivery was last opened (created or replayed): the index into
    # the retry schedule. ``attempt_count`` keeps counting across replays.
    cycle_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_trigger: Mapped[str] = mapped_column(String(16), default=Trigger.SCHEDULED)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    # When the broker was last asked to look at this delivery; the sweeper re-rings
    # only deliveries whose bell has gone unanswered for a while.
    rung_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why the delivery is waiting without spending an attempt ("paused", "circuit",
    # "concurrency", "rate"), or NULL. Cleared when it is next claimed.
    held_by: Mapped[str | None] = mapped_column(String(16))

    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error_kind: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    event: Mapped[Event] = relationship(back_populates="deliveries", lazy="raise")
    endpoint: Mapped[Endpoint] = relationship(lazy="raise")
    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="delivery", lazy="raise", order_by="Attempt.number"
    )


class Attempt(Base):
    """One HTTP try of a delivery: what we sent (never a secret) and what came back."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number", name="uq_attempts_number"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    duration_ms: Mapped[float] = mapped_column(Float)
    request_headers: Mapped[dict[str, str]] = mapped_column(JSONType)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    response_body: Mapped[str | None] = mapped_column(Text)
    response_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))

    delivery: Mapped[Delivery] = relationship(back_populates="attempts", lazy="raise")


class ApiKey(Base):
    """A Bearer key of the HTTP API. Only its SHA-256 is stored; the key is shown once.

    ``workspace_id`` NULL: an admin key, acting for the workspace a request names.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str | None] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The key's last characters, so people can tell their keys apart.
    hint: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyRecord(Base):
    """The response to a write made with an ``Idempotency-Key``, kept for a day.

    ``response_status`` NULL: the first request is still in flight.
    """

    __tablename__ = "idempotency_records"

    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ReplayRun(Base):
    """A bulk replay running in the background: what it selects and how far it got.

    Any API process answers for it, because its progress lives here.
    """

    __tablename__ = "replay_runs"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), index=True
    )
    # {"statuses": [...], "since": ISO | null, "until": ISO | null, "types": [...]}
    selection: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16))
    selected: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
