"""Claiming a batch of deliveries in one short transaction.

The row decides, not the message: a delivery is attempted only by winning the claim
(pending, due, unleased → leased until the attempt's deadline plus a margin), so a
duplicated or replayed message makes no second HTTP request.

One transaction claims every delivery of a batch that may go now:

1. the candidates among the rung ids (or, when a worker pulls endpoints' backlogs,
   each endpoint's oldest due deliveries, up to its free slots: many endpoints in one
   statement on PostgreSQL);
2. PostgreSQL: a transaction-scoped advisory lock per endpoint (taken in one order), so
   claims of one endpoint's deliveries are serialised *across processes* while they
   count its deliveries in flight; SQLite serialises writers anyway (``BEGIN
   IMMEDIATE``). Nothing else waits for these locks: recording an attempt never takes
   them, and the endpoint's row is not locked;
3. the endpoints with their deliveries in flight, in one statement;
4. for a healthy endpoint (enabled, not paused, circuit closed, no rate limit), its
   concurrency budget is ``limit - in flight``: that many candidates are leased with
   one ``UPDATE … RETURNING`` for the whole batch. Candidates over the budget are held
   (``concurrency``, the one-at-a-time API) or, from the sending loop, left due and
   untouched for the worker that holds the budget to pull as slots free (the sweeper
   leaves an endpoint's due deliveries alone while it has a live lease);
5. a ``fifo`` endpoint (ordered delivery) may have one delivery in flight: its oldest
   pending one by event, once due; every other candidate waits behind it (``ordering``)
   until it has succeeded, failed for good or been skipped, however many messages ring;
6. an endpoint that needs a decision under its row lock (disabled, paused, circuit
   open, rate limited) goes through ``worker.policy.admission`` one delivery at a time,
   with its row locked: those are the rare, slow cases;
7. the events' bodies of what was claimed, in one statement.
"""

from __future__ import annotations

import secrets
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

import structlog
from sqlalchemy import (
    ARRAY,
    Connection,
    Integer,
    String,
    Table,
    any_,
    bindparam,
    column,
    func,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from outbox.clock import Clock
from outbox.database import IN_INDEX_ORDER
from outbox.models import Delivery, DeliveryStatus, Endpoint, Event
from worker.endpoints.registry import FIFO
from worker.engine.results import LEFT, NOT_CLAIMED, NotRecorded, Result
from worker.engine.transition import skipped_values
from worker.fanout.deliveries import skipped_note
from worker.http.errors import InternalFailure
from worker.policy import admission
from worker.policy.admission import Admission, Hold
from worker.policy.limits import live_lease
from worker.settings import Settings
from worker.telemetry.metrics import Metrics

log = structlog.get_logger(__name__)

D = cast(Table, Delivery.__table__)
E = cast(Table, Endpoint.__table__)
EV = cast(Table, Event.__table__)

ADVISORY_NAMESPACE = 0x0CA7
"""First key of our advisory locks (the second is the endpoint id's hash)."""


@dataclass(frozen=True)
class Target:
    """What sending to and recording for an endpoint needs, read at claim time."""

    id: str
    url: str
    headers: dict[str, str]
    secrets: list[dict[str, Any]]
    healthy: bool
    """Circuit closed, never failed since its last success: a 2xx needs no health
    decision under the endpoint's lock."""


@dataclass(frozen=True)
class Claim:
    """One leased delivery, with everything its attempt needs."""

    token: str
    delivery_id: str
    event_id: str
    event_type: str
    event_created_at: datetime
    body: str
    attempt_count: int
    cycle_attempts: int
    next_trigger: str
    target: Target
    failure: InternalFailure | None = None
    """Something unexpected failed after the claim was won (admission): the attempt is
    recorded with this error instead of being sent."""
    span: Any = None
    """The delivery's trace span while it is in flight (tracing on)."""


@dataclass
class ClaimBatch:
    """What one claim transaction did."""

    claims: list[Claim] = field(default_factory=list)
    results: dict[str, Result] = field(default_factory=dict)
    """Deliveries not claimed, held, skipped or left, by id."""
    saturated: set[str] = field(default_factory=set)
    """Endpoints whose due deliveries were left for lack of budget (its holder pulls)."""
    found: Counter[str] = field(default_factory=Counter)
    """Due deliveries found per endpoint (a pull that finds fewer than it asked for has
    drained that endpoint's backlog)."""
    left: Counter[str] = field(default_factory=Counter)
    """Due deliveries left per endpoint for lack of budget (untouched, still due)."""


def internal(stage: str, exc: BaseException) -> InternalFailure:
    """An unexpected error after a won claim, as the attempt's error (logged once)."""
    log.error("delivery.internal_error", stage=stage, error=repr(exc)[:500])
    failure = InternalFailure(f"internal error while {stage}: {type(exc).__name__}: {exc}")
    failure.__cause__ = exc
    return failure


_CLAIMABLE = (
    D.c.status == DeliveryStatus.PENDING,
    D.c.next_attempt_at <= bindparam("now"),
    or_(D.c.lease_until.is_(None), D.c.lease_until < bindparam("now")),
)


def ids_in(column: Any, postgres: bool, name: str = "ids") -> Any:
    """``column`` among the list bound as ``name``: ``= ANY(array)`` on PostgreSQL (one
    statement text whatever the list's length, so it is compiled once and prepared by
    the server), an expanding ``IN`` elsewhere."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


@cache
def _candidates(postgres: bool) -> Any:
    return (
        select(D.c.id, D.c.endpoint_id, D.c.held_by)
        .where(ids_in(D.c.id, postgres), *_CLAIMABLE)
        .order_by(D.c.id)
    )


_BACKLOG_ORDER = (D.c.next_attempt_at, D.c.id)
"""Which of an endpoint's due deliveries a pull takes first (``_BACKLOG``, ``_backlogs``)."""

_BACKLOG = (
    select(D.c.id, D.c.endpoint_id, D.c.held_by, D.c.next_attempt_at)
    .where(D.c.endpoint_id == bindparam("endpoint_id"), *_CLAIMABLE)
    .order_by(*_BACKLOG_ORDER)
    .limit(bindparam("limit"))
)
"""One endpoint's backlog, oldest due first, from the start of it."""

_BACKLOG_FROM = (
    select(D.c.id, D.c.endpoint_id, D.c.held_by, D.c.next_attempt_at)
    .where(
        tuple_(D.c.endpoint_id, D.c.next_attempt_at, D.c.id)
        >= tuple_(
            bindparam("endpoint_id", type_=D.c.endpoint_id.type),
            bindparam("front_at", type_=D.c.next_attempt_at.type),
            bindparam("front_id", type_=D.c.id.type),
        ),
        D.c.endpoint_id <= bindparam("endpoint_id", type_=D.c.endpoint_id.type),
        *_CLAIMABLE,
    )
    .order_by(D.c.endpoint_id, *_BACKLOG_ORDER)
    .limit(bindparam("limit"))
)
"""PostgreSQL: one endpoint's backlog, oldest due first, from its front on (see
:class:`Front`): a row comparison on all three of ``ix_deliveries_backlog``'s columns,
bounded above by the endpoint, so the scan starts at the front. With an equality on
``endpoint_id`` beside it, the scan would start at the endpoint's first entry all the
same; a bound on ``next_attempt_at`` alone lets the planner take ``ix_deliveries_due``
and sort what that range holds."""

IN_BACKLOG_ORDER = IN_INDEX_ORDER
"""Sent before pulls from fronts: statistics taken while the endpoint had a short
backlog estimate a handful of rows past the front, and the planner then read every one
of them with a bitmap scan and sorted them for the LIMIT (46 ms a pull with 65,000
waiting, measured) instead of walking the index in order."""

FRONT_FOR = timedelta(seconds=1)
"""How long pulls start from a remembered front before one reads from the start again."""


@dataclass(frozen=True)
class Front:
    """Where an endpoint's due backlog began at its last deep pull (one that found as
    many as it asked for), so that the next pull starts there, not at the start of
    ``ix_deliveries_backlog``: PostgreSQL leaves an index entry behind for every row
    version a drain leaves dead (two per delivery: leased, recorded) until a vacuum,
    and a pull from the start walks all of them, more with every delivery drained.

    Nothing the pull should take lies before the front, but for a delivery whose lease
    ran out with its worker (its due time is old) and one committed late with an older
    due time than the front: a pull from the front that finds fewer than it asked for
    reads again from the start, in the same transaction, and every ``FRONT_FOR`` a pull
    does in any case."""

    at: datetime
    id: str
    read_from_start: datetime
    """When a pull of this endpoint last read from the start."""


@cache
def _backlogs() -> Any:
    """PostgreSQL: the backlogs of many endpoints in one statement, each endpoint's
    oldest due deliveries up to its own number of slots (the same rows, in the same
    order, as ``_BACKLOG`` endpoint by endpoint)."""
    wanted = (
        func.unnest(
            bindparam("endpoint_ids", type_=ARRAY(String)),
            bindparam("slots", type_=ARRAY(Integer)),
        )
        .table_valued(column("endpoint_id", String), column("slots", Integer))
        .render_derived(name="wanted")
    )
    backlog = (
        select(D.c.id, D.c.endpoint_id, D.c.held_by, D.c.next_attempt_at)
        .where(D.c.endpoint_id == wanted.c.endpoint_id, *_CLAIMABLE)
        .order_by(*_BACKLOG_ORDER)
        .limit(wanted.c.slots)
        .lateral("backlog")
    )
    return (
        select(backlog.c.id, backlog.c.endpoint_id, backlog.c.held_by, backlog.c.next_attempt_at)
        .select_from(wanted.join(backlog, true()))
        .order_by(backlog.c.endpoint_id, backlog.c.next_attempt_at, backlog.c.id)
    )


_LIVE_LEASE = live_lease(D.c, E.c.id, bindparam("now"))


def _busy(postgres: bool) -> Any:
    """The endpoint's deliveries under a live lease, as the claim compares them with its
    concurrency limit.

    On PostgreSQL, counted newest lease first and no further than the limit (bound as
    ``limit``, the default for an endpoint without its own): the same budget, since a
    count at the limit leaves none either way. ``ix_deliveries_in_flight`` also holds the
    entries of every delivery leased within a lease's length and recorded since the last
    vacuum (their rows' dead versions), in front of the live ones. Counted whole, the
    planner took a bitmap scan, which visits each of those rows on every claim (45,000
    of them, 5 ms a claim, while a backlog drained at a thousand a second); read in
    index order the scan marks them dead once and steps over them after, and an
    endpoint at its limit (the draining one) stops at its newest leases."""
    if not postgres:
        return select(func.count()).where(*_LIVE_LEASE).scalar_subquery()
    live = (
        select(D.c.id)
        .where(*_LIVE_LEASE)
        .order_by(D.c.lease_until.desc())
        .limit(func.coalesce(E.c.max_concurrency, bindparam("limit")))
        .correlate(E)
        .subquery("live")
    )
    return select(func.count()).select_from(live).scalar_subquery()


@cache
def _endpoints(postgres: bool) -> Any:
    return select(
        E.c.id,
        E.c.url,
        E.c.headers,
        E.c.secrets,
        E.c.enabled,
        E.c.paused,
        E.c.max_concurrency,
        E.c.rate_limit,
        E.c.consecutive_failures,
        E.c.failing_since,
        E.c.probe_delivery_id,
        E.c.ordering,
        _busy(postgres).label("busy"),
    ).where(ids_in(E.c.id, postgres))


@cache
def _lease(postgres: bool) -> Any:
    return (
        update(D)
        .where(ids_in(D.c.id, postgres), *_CLAIMABLE)
        .values(
            lease_until=bindparam("lease_end"),
            lease_token=bindparam("token"),
            held_by=None,
            updated_at=bindparam("now"),
        )
        .returning(
            D.c.id,
            D.c.event_id,
            D.c.endpoint_id,
            D.c.attempt_count,
            D.c.cycle_attempts,
            D.c.next_trigger,
        )
    )


@cache
def _hold_unclaimed(postgres: bool) -> Any:
    return (
        update(D)
        .where(ids_in(D.c.id, postgres), *_CLAIMABLE)
        .values(
            next_attempt_at=bindparam("until"),
            rung_at=bindparam("now"),
            held_by=bindparam("reason"),
            updated_at=bindparam("now"),
        )
    )


_HEAD = (
    select(D.c.id, D.c.endpoint_id, D.c.held_by, D.c.next_attempt_at, D.c.lease_until)
    .select_from(D.join(EV, EV.c.id == D.c.event_id))
    .where(D.c.endpoint_id == bindparam("endpoint_id"), D.c.status == DeliveryStatus.PENDING)
    .order_by(EV.c.created_at, EV.c.id)
    .limit(1)
)


@cache
def _events(postgres: bool) -> Any:
    return select(EV.c.id, EV.c.type, EV.c.body, EV.c.created_at).where(ids_in(EV.c.id, postgres))


_ADVISORY_LOCKS = text(
    "SELECT count(pg_advisory_xact_lock(:namespace, k)) FROM "
    "(SELECT DISTINCT hashtext(e) AS k FROM unnest(CAST(:ids AS text[])) AS e ORDER BY 1) AS keys"
)


class Claimer:
    """Claims batches inside a transaction its caller opened (``session``)."""

    def __init__(
        self, settings: Settings, admission_: Admission, clock: Clock, metrics: Metrics
    ) -> None:
        self._settings = settings
        self._admission = admission_
        self._clock = clock
        self._metrics = metrics
        self._fronts: dict[str, Front] = {}

    def claim(
        self,
        session: Session,
        ids: Sequence[str],
        pulls: Mapping[str, int] | None,
        room: int,
        leave_over_budget: bool,
    ) -> ClaimBatch:
        """Claim what may go now of ``ids`` (or, with ``pulls``, of those endpoints'
        backlogs, up to that many of each), at most ``room`` in all (see the module's
        docstring)."""
        connection = session.connection()
        pg = _is_pg(connection)
        batch = ClaimBatch()
        now = self._clock()
        deep: dict[str, datetime] = {}
        if not pulls:
            found = list(connection.execute(_candidates(pg), {"ids": list(ids), "now": now}))
        else:
            found, deep = self._pull(connection, pg, pulls, room, now)
        batch.found.update(row.endpoint_id for row in found)
        seen = {row.id for row in found}
        batch.results.update((i, NOT_CLAIMED) for i in ids if i not in seen)
        if not found:
            return batch
        by_endpoint: dict[str, list[Any]] = defaultdict(list)
        for row in found:
            by_endpoint[row.endpoint_id].append(row)
        endpoint_ids = sorted(by_endpoint)
        if pg:
            connection.execute(
                _ADVISORY_LOCKS, {"namespace": ADVISORY_NAMESPACE, "ids": endpoint_ids}
            )
        endpoints = {
            row.id: row
            for row in connection.execute(
                _endpoints(pg),
                {"ids": endpoint_ids, "now": now, "limit": self._settings.max_concurrency},
            )
        }
        token = secrets.token_hex(16)
        lease: list[str] = []
        targets: dict[str, Target] = {}
        claimed: list[Any] = []
        failures: dict[str, InternalFailure] = {}
        for endpoint_id_, candidates in sorted(by_endpoint.items()):
            endpoint = endpoints.get(endpoint_id_)
            if endpoint is None:  # deleted meanwhile (its deliveries go with it)
                batch.results.update((c.id, NOT_CLAIMED) for c in candidates)
                continue
            targets[endpoint_id_] = _target(endpoint)
            fifo = endpoint.ordering == FIFO and endpoint.enabled
            if fifo:
                candidates = self._head(
                    connection, endpoint, candidates, now, batch, leave_over_budget
                )
                if not candidates:
                    continue
            if self._needs_lock(endpoint):
                claimed += self._one_by_one(
                    session, endpoint_id_, candidates, token, now, batch, failures
                )
                continue
            limit = 1 if fifo else endpoint.max_concurrency or self._settings.max_concurrency
            budget = max(0, min(limit - endpoint.busy, room - len(lease)))
            lease += [c.id for c in candidates[:budget]]
            over = [c.id for c in candidates[budget:]]
            if over:
                self._over_budget(
                    connection, endpoint_id_, over, now, batch, leave_over_budget, Hold.CONCURRENCY
                )
        if lease:
            claimed += connection.execute(
                _lease(pg),
                {
                    "ids": lease,
                    "now": now,
                    "lease_end": now + self._settings.lease_duration,
                    "token": token,
                },
            ).all()
        won = {row.id for row in claimed}
        if deep:
            self._remember_fronts(deep, found, won)
        batch.results.update((i, NOT_CLAIMED) for i in lease if i not in won)
        if not claimed:
            return batch
        events = {
            row.id: row
            for row in connection.execute(
                _events(pg), {"ids": sorted({row.event_id for row in claimed})}
            )
        }
        for row in sorted(claimed, key=lambda r: r.id):
            event = events[row.event_id]
            batch.claims.append(
                Claim(
                    token=token,
                    delivery_id=row.id,
                    event_id=row.event_id,
                    event_type=event.type,
                    event_created_at=event.created_at,
                    body=event.body,
                    attempt_count=row.attempt_count,
                    cycle_attempts=row.cycle_attempts,
                    next_trigger=row.next_trigger,
                    target=targets[row.endpoint_id],
                    failure=failures.get(row.id),
                )
            )
        return batch

    def _pull(
        self, connection: Connection, pg: bool, pulls: Mapping[str, int], room: int, now: datetime
    ) -> tuple[list[Any], dict[str, datetime]]:
        """The due backlogs of ``pulls``' endpoints, up to their slots (and ``room``):
        from each one's remembered front where there is one (PostgreSQL), else from the
        start. And the endpoints whose backlog is deeper than the pull (a front to
        remember once the claim is made), with when each last read from the start."""
        slots = {e: min(n, room) for e, n in sorted(pulls.items()) if n > 0}
        fronts: dict[str, Front] = {}
        if pg:
            for endpoint_id in slots:
                front = self._fronts.get(endpoint_id)
                if front is not None and now - front.read_from_start < FRONT_FOR:
                    fronts[endpoint_id] = front
        found = self._backlog(connection, pg, slots, room, now, fronts)
        count = Counter(row.endpoint_id for row in found)
        short = {e: n for e, n in slots.items() if e in fronts and count[e] < n}
        if short:  # maybe something behind the front: read those from the start
            found = [row for row in found if row.endpoint_id not in short]
            found += self._backlog(connection, pg, short, room, now)
            count = Counter(row.endpoint_id for row in found)
        deep: dict[str, datetime] = {}
        for endpoint_id, wanted in slots.items():
            if not pg or count[endpoint_id] < wanted:  # drained: nothing to remember
                self._fronts.pop(endpoint_id, None)
                continue
            kept = fronts.get(endpoint_id)
            if kept is None or endpoint_id in short:
                deep[endpoint_id] = now  # this pull read it from the start
            else:
                deep[endpoint_id] = kept.read_from_start
        return found, deep

    def _remember_fronts(
        self, deep: Mapping[str, datetime], found: list[Any], won: set[str]
    ) -> None:
        """Where the next pull of each deeply pulled endpoint starts: at the oldest
        delivery this pull found and did not claim (left for lack of budget), or, with
        all of them claimed, at the last one claimed (what follows it comes next)."""
        rows: dict[str, list[Any]] = defaultdict(list)
        for row in found:
            if row.endpoint_id in deep:
                rows[row.endpoint_id].append(row)
        for endpoint_id, since in deep.items():
            ordered = sorted(rows[endpoint_id], key=lambda r: (r.next_attempt_at, r.id))
            waiting = [row for row in ordered if row.id not in won]
            front = waiting[0] if waiting else ordered[-1]
            self._fronts[endpoint_id] = Front(front.next_attempt_at, front.id, since)

    @staticmethod
    def _backlog(
        connection: Connection,
        pg: bool,
        pulls: Mapping[str, int],
        room: int,
        now: datetime,
        fronts: Mapping[str, Front] | None = None,
    ) -> list[Any]:
        """The due backlogs of ``pulls``' endpoints, up to their slots (and ``room``);
        on PostgreSQL, those with a front in ``fronts`` from there (a statement each),
        the others in one statement."""
        slots = {e: min(n, room) for e, n in sorted(pulls.items()) if n > 0}
        found: list[Any] = []
        from_front = {e: f for e, f in (fronts or {}).items() if e in slots} if pg else {}
        if from_front:
            connection.exec_driver_sql(IN_BACKLOG_ORDER)
        for endpoint_id, front in sorted(from_front.items()):
            found += connection.execute(
                _BACKLOG_FROM,
                {
                    "endpoint_id": endpoint_id,
                    "front_at": front.at,
                    "front_id": front.id,
                    "now": now,
                    "limit": slots.pop(endpoint_id),
                },
            ).all()
        if pg and len(slots) > 1:
            found += connection.execute(
                _backlogs(),
                {"endpoint_ids": list(slots), "slots": list(slots.values()), "now": now},
            ).all()
            return found
        for endpoint_id, limit in slots.items():  # one, or SQLite (in-process statements)
            found += connection.execute(
                _BACKLOG, {"endpoint_id": endpoint_id, "now": now, "limit": limit}
            ).all()
        return found

    def _needs_lock(self, endpoint: Any) -> bool:
        return bool(
            not endpoint.enabled
            or endpoint.paused
            or endpoint.consecutive_failures >= self._settings.circuit_threshold
            or endpoint.probe_delivery_id is not None
            or endpoint.rate_limit
            or self._settings.rate_limit
        )

    def _head(
        self,
        connection: Connection,
        endpoint: Any,
        candidates: list[Any],
        now: datetime,
        batch: ClaimBatch,
        leave: bool,
    ) -> list[Any]:
        """A ``fifo`` endpoint: only its oldest pending delivery (by event) may go, and
        only when it is due and nothing of the endpoint is in flight. Returns the head
        to claim, if it may go; the other candidates wait behind it: left for the
        worker sending the head to pull once it is done, or, while the head waits for
        its own retry, held until the head is due."""
        head = connection.execute(_HEAD, {"endpoint_id": endpoint.id}).one_or_none()
        behind = [c.id for c in candidates if head is None or c.id != head.id]
        due = head is not None and head.next_attempt_at is not None and head.next_attempt_at <= now
        leased = head is not None and head.lease_until is not None and head.lease_until >= now
        free = due and not leased and endpoint.busy == 0
        if behind:
            if head is not None and not due and not leased and head.next_attempt_at is not None:
                self._hold(
                    connection, endpoint.id, behind, now, head.next_attempt_at, Hold.ORDERING, batch
                )
            else:
                self._over_budget(connection, endpoint.id, behind, now, batch, leave, Hold.ORDERING)
        return [head] if free and head is not None else []

    def _over_budget(
        self,
        connection: Connection,
        endpoint_id: str,
        over: list[str],
        now: datetime,
        batch: ClaimBatch,
        leave: bool,
        reason: Hold,
    ) -> None:
        if not leave:
            until = now + self._admission.spread(self._settings.limited_retry)
            self._hold(connection, endpoint_id, over, now, until, reason, batch)
            return
        # Still due, and not written to: the sweeper leaves an endpoint's due
        # deliveries to the worker holding its budget while it has one in flight, and
        # that worker pulls them as slots free (one write per delivery fewer, on the
        # path every delivery of a backlog takes).
        batch.saturated.add(endpoint_id)
        batch.left[endpoint_id] += len(over)
        batch.results.update((i, LEFT) for i in over)
        self._metrics.delivery_held(reason, endpoint_id=endpoint_id)
        log.info(
            "delivery.held",
            held_by=reason,
            endpoint_id=endpoint_id,
            deliveries=len(over),
            left_for="the worker holding the budget",
        )

    def _hold(
        self,
        connection: Connection,
        endpoint_id: str,
        ids: list[str],
        now: datetime,
        until: datetime,
        reason: Hold,
        batch: ClaimBatch,
    ) -> None:
        connection.execute(
            _hold_unclaimed(_is_pg(connection)),
            {"ids": ids, "now": now, "until": until, "reason": reason},
        )
        delay = until - now
        for delivery_id in ids:
            batch.results[delivery_id] = Result(NotRecorded.POSTPONED, delay, held_by=reason)
            self._metrics.delivery_held(reason, endpoint_id=endpoint_id)
            log.info(
                "delivery.held",
                held_by=reason,
                delivery_id=delivery_id,
                endpoint_id=endpoint_id,
                retry_in_s=round(delay.total_seconds(), 3),
            )

    def _one_by_one(
        self,
        session: Session,
        endpoint_id: str,
        candidates: list[Any],
        token: str,
        now: datetime,
        batch: ClaimBatch,
        failures: dict[str, InternalFailure],
    ) -> list[Any]:
        """The endpoint's policy decides with its row locked (the rare cases)."""
        connection = session.connection()
        claimed: list[Any] = []
        endpoint = session.scalars(
            select(Endpoint).where(Endpoint.id == endpoint_id).with_for_update(key_share=True)
        ).one()
        lease_end = now + self._settings.lease_duration
        for candidate in candidates:
            row = connection.execute(
                _lease(_is_pg(connection)),
                {"ids": [candidate.id], "now": now, "lease_end": lease_end, "token": token},
            ).one_or_none()
            if row is None:
                batch.results[candidate.id] = NOT_CLAIMED
                continue
            bound = log.bind(delivery_id=candidate.id, endpoint_id=endpoint_id)
            if not endpoint.enabled:
                connection.execute(
                    update(D)
                    .where(D.c.id == candidate.id)
                    .values(**skipped_values(skipped_note(endpoint), now))
                )
                bound.info("delivery.skipped", reason=endpoint.disabled_reason)
                batch.results[candidate.id] = Result(DeliveryStatus.SKIPPED)
                continue
            try:
                wait = self._admission.decide(
                    session, endpoint, Delivery(id=candidate.id), candidate.held_by, now
                )
                session.flush()
            except SQLAlchemyError:
                raise
            except Exception as exc:  # e.g. a limit edited by hand into inf: keep the
                # lease, drop what admission changed, and record the failure as an attempt.
                session.refresh(endpoint)
                failures[candidate.id] = internal("admitting it", exc)
                claimed.append(row)
                continue
            if wait is not None:
                admission.hold(session, candidate.id, token, wait, now)
                self._metrics.delivery_held(wait.reason, endpoint_id=endpoint_id)
                batch.results[candidate.id] = Result(
                    NotRecorded.POSTPONED, wait.delay, held_by=wait.reason
                )
                continue
            claimed.append(row)
        session.flush()
        return claimed


def _is_pg(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def _target(endpoint: Any) -> Target:
    return Target(
        id=endpoint.id,
        url=endpoint.url,
        headers=endpoint.headers or {},
        secrets=list(endpoint.secrets or []),
        healthy=bool(
            endpoint.enabled
            and endpoint.consecutive_failures == 0
            and endpoint.failing_since is None
            and endpoint.probe_delivery_id is None
        ),
    )
