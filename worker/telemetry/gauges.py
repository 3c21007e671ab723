"""Figures derived from the database's state, queried when Prometheus scrapes.

They describe the pipeline, not this process, so they do not depend on the delivery
engine's internals: outbox lag (age of the oldest waiting event), waiting events,
backlog (pending deliveries that are due and not leased), deliveries in flight (leased),
deliveries on hold by reason, endpoints with an open circuit, disabled and paused
endpoints. Each figure is one indexed query (``ix_events_waiting``, ``ix_deliveries_due``,
``ix_deliveries_in_flight``, ``ix_deliveries_held``, the small endpoints table); the
answers are cached for ``cache_seconds`` so several scrapers (or a dashboard refresh
storm) cost one round of queries.

Every process with metrics on exports the same figures; dashboards and alerts take
``max()`` over the processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import structlog
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from outbox.clock import Clock, utcnow
from outbox.models import Delivery, DeliveryStatus, Endpoint, Event
from worker.telemetry.metrics import HOLD_REASONS, PREFIX

log = structlog.get_logger("worker.telemetry")

DEFAULT_CACHE_SECONDS = 2.0
"""How long one round of state queries answers scrapes."""


@dataclass(frozen=True)
class State:
    """The figures of one round of queries."""

    waiting_events: int
    outbox_lag_seconds: float
    backlog: int
    in_flight: int
    circuits_open: int
    disabled: int
    paused: int
    # Pending deliveries waiting out a hold, by reason (every reason present, maybe 0).
    on_hold: dict[str, int] = field(default_factory=dict)


def read_state(session: Session, *, now_clock: Clock, circuit_threshold: int) -> State:
    """One round of the state queries."""
    now = now_clock()
    waiting = session.execute(
        select(func.count()).select_from(Event).where(Event.dispatched_at.is_(None))
    ).scalar_one()
    oldest = session.execute(
        select(Event.created_at).where(Event.dispatched_at.is_(None)).order_by(Event.id).limit(1)
    ).scalar_one_or_none()
    backlog = session.execute(
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.next_attempt_at <= now,
            or_(Delivery.lease_until.is_(None), Delivery.lease_until <= now),
        )
    ).scalar_one()
    in_flight = session.execute(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.lease_until.is_not(None), Delivery.lease_until > now)
    ).scalar_one()
    endpoints = session.execute(
        select(
            func.count().filter(
                Endpoint.enabled.is_(True), Endpoint.consecutive_failures >= circuit_threshold
            ),
            func.count().filter(Endpoint.enabled.is_(False)),
            func.count().filter(Endpoint.paused.is_(True)),
        )
    ).one()
    on_hold = dict.fromkeys(HOLD_REASONS, 0)
    for reason, count in session.execute(
        select(Delivery.held_by, func.count())
        .where(Delivery.held_by.is_not(None), Delivery.status == DeliveryStatus.PENDING)
        .group_by(Delivery.held_by)
    ):
        on_hold[str(reason)] = int(count)
    return State(
        waiting_events=int(waiting),
        outbox_lag_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        backlog=int(backlog),
        in_flight=int(in_flight),
        circuits_open=int(endpoints[0]),
        disabled=int(endpoints[1]),
        paused=int(endpoints[2]),
        on_hold=on_hold,
    )


_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("outbox_lag_seconds", "outbox_lag_seconds", "Age of the oldest event not yet fanned out."),
    ("outbox_waiting_events", "waiting_events", "Events not yet fanned out to deliveries."),
    ("deliveries_due", "backlog", "Backlog: pending deliveries that are due and not leased."),
    ("deliveries_in_flight", "in_flight", "Deliveries leased by a worker (an attempt running)."),
    ("endpoints_circuit_open", "circuits_open", "Enabled endpoints whose circuit is open."),
    ("endpoints_disabled", "disabled", "Endpoints disabled (410 Gone, failing too long, ops)."),
    ("endpoints_paused", "paused", "Endpoints paused by an operator."),
)


class StateGauges(Collector):
    """A prometheus-client collector that reads :class:`State` at scrape time.

    When the database does not answer, the state gauges are left out of the scrape and
    ``catentio_webhooks_state_up`` is 0 (a stale figure would look like a healthy one).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        circuit_threshold: int,
        clock: Clock = utcnow,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._threshold = circuit_threshold
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, State | None] | None = None

    def state(self) -> State | None:
        """The figures, from cache if fresh enough; ``None`` if the database failed."""
        with self._lock:
            now = self._monotonic()
            if self._cached is not None and now - self._cached[0] < self._cache_seconds:
                return self._cached[1]
            state: State | None
            try:
                with self._sessions() as session:
                    state = read_state(
                        session, now_clock=self._clock, circuit_threshold=self._threshold
                    )
            except SQLAlchemyError as exc:
                log.warning("metrics.state_unavailable", error=str(exc).splitlines()[0])
                state = None
            self._cached = (now, state)
            return state

    def describe(self) -> Iterable[Metric]:
        """The families, without querying (prometheus-client calls this at registration)."""
        return list(self._families(None))

    def collect(self) -> Iterator[Metric]:
        """The families with this scrape's values."""
        return self._families(self.state(), with_values=True)

    def _families(self, state: State | None, *, with_values: bool = False) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_state_up", "1 if the state gauges could be read from the database."
        )
        if with_values:
            up.add_metric([], 1.0 if state is not None else 0.0)
        yield up
        for name, attribute, help_text in _GAUGES:
            family = GaugeMetricFamily(f"{PREFIX}_{name}", help_text)
            if state is not None:
                family.add_metric([], float(getattr(state, attribute)))
            if state is not None or not with_values:
                yield family
        held = GaugeMetricFamily(
            f"{PREFIX}_deliveries_on_hold",
            "Pending deliveries waiting out a hold (paused, circuit, concurrency, rate).",
            labels=["reason"],
        )
        if state is not None:
            for reason, count in sorted(state.on_hold.items()):
                held.add_metric([reason], float(count))
        if state is not None or not with_values:
            yield held
