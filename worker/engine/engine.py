"""The engine: claim batches, send them on the loop, record them in batches.

Two ways in, one code path:

* ``deliver_many(ids)`` / ``deliver(id)``: claim, send, wait, record, return what
  happened to each delivery (the one-at-a-time API that tests and replays drive;
  over-budget deliveries are held, ``concurrency``, and nothing is rung).
* ``ring(ids)``, the actor's: the dramatiq thread reserves room on the sending loop,
  claims, hands the claims to the loop and returns. Each finished attempt goes to the
  recorder thread, which writes whatever has finished in one transaction, then rings
  retries (one delayed message per group of similar delays) and released deliveries,
  and *pulls*: an endpoint whose due deliveries were left for lack of budget gets its
  freed slots refilled from its backlog at once by the worker that freed them, so a
  long backlog drains without a message per delivery and without re-ringing; once per
  ``limited_retry`` the freed slots are offered to the broker instead, so every worker
  process takes part.

Our own failures are never the receiver's: a database that fails a claim raises
:class:`~worker.errors.DatabaseUnavailable` before anything is sent; one that fails a
record leaves the lease to expire (the attempt is not counted, the sweeper rings the
delivery again: at-least-once). An unexpected error of ours after a won claim (bad
stored data, a bug) is recorded as an ``internal`` attempt, so the delivery ends
instead of looping.
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import timedelta
from functools import lru_cache, partial
from typing import Any, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from outbox.clock import Clock, utcnow
from outbox.database import is_outage, lock_for_write
from worker.availability import Availability
from worker.endpoints.secretbox import SecretBox
from worker.endpoints.signing import KeyCache
from worker.engine.ages import Ages, Bucket
from worker.engine.claim import Claim, ClaimBatch, Claimer, internal
from worker.engine.loop import SendingLoop
from worker.engine.record import Finished, Recorded, Recorder
from worker.engine.results import NOT_CLAIMED, NotRecorded, Result
from worker.engine.transition import plan
from worker.errors import DatabaseUnavailable, InvalidEndpointURL
from worker.http.errors import InvalidURL
from worker.http.headers import build_headers
from worker.http.sender import AsyncSender, SendResult
from worker.http.urls import check_endpoint_url
from worker.policy.admission import Admission
from worker.policy.outcomes import classify
from worker.policy.schedule import RetrySchedule
from worker.settings import Settings
from worker.telemetry.metrics import NO_METRICS, Metrics, status_class
from worker.telemetry.tracing import NO_TRACING, TraceSpan, Tracing

log = structlog.get_logger(__name__)

T = TypeVar("T")

InFlight = Future[Finished] | asyncio.Future[Finished]
"""An attempt that has finished: a task of the loop, or the future of one."""

Ring = Callable[[Sequence[str], int, Mapping[str, int] | None], None]
"""Enqueue one message, after this many milliseconds: for these deliveries, or (endpoint
ids and a number of slots each) to pull that many of each endpoint's backlog. Never
raises: a broker that cannot be reached is the caller's to report."""

PULLS_PER_MESSAGE = 500
"""Endpoints one pull message offers at most (one claim statement takes them all)."""

RECORD_BATCH = 500
"""Finished attempts written in one transaction at most."""

PULL_EVERY = 1.0
"""Seconds between pulls of an endpoint this process delivers to but did not see
saturated: deliveries left by a worker that has since gone are picked up this way.
Also how long after leaving deliveries to another process's budget (with none of that
endpoint's in flight here) a pull follows, in case that process did not take them."""

RECORD_RETRY = 0.5
"""Seconds between tries to record while the database is unavailable."""

RECORD_WINDOW = 0.004
"""Seconds the recorder waits, after an attempt finished, for others still in flight to
record with it in the same transaction (and to refill their slots with one claim)."""

YOUNG = 1.0
"""Seconds in flight after which the recorder no longer waits for an attempt to record
with others (a receiver that slow will not finish within ``RECORD_WINDOW``)."""


def group_by_delay(
    delays: Sequence[tuple[str, timedelta]], *, tolerance: float = 0.1
) -> list[tuple[list[str], int]]:
    """Deliveries due at similar times → one (ids, delay in ms) message per group: a
    group waits for its latest member, which is at most ``tolerance`` (or 50 ms) later
    than its earliest, so none is rung before it is due."""
    groups: list[tuple[list[str], int]] = []
    start_ms = -1
    for delivery_id, delay in sorted(delays, key=lambda d: d[1]):
        ms = max(0, int(delay.total_seconds() * 1000) + 1)
        if groups and ms <= start_ms + max(50, int(start_ms * tolerance)):
            groups[-1][0].append(delivery_id)
            groups[-1] = (groups[-1][0], ms)
        else:
            start_ms = ms
            groups.append(([delivery_id], ms))
    return groups


@lru_cache(maxsize=4096)
def _url_refused(url: str) -> str | None:
    """Why today's URL rules refuse ``url`` (``None``: they do not); cached, since every
    delivery of an endpoint asks about the same URL."""
    try:
        check_endpoint_url(url)
    except InvalidEndpointURL as exc:
        return str(exc)
    return None


class DeliveryEngine:
    """Claims, sends and records deliveries for one process. Thread-safe."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        sender: AsyncSender,
        loop: SendingLoop,
        box: SecretBox,
        settings: Settings,
        schedule: RetrySchedule | None = None,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
        metrics: Metrics = NO_METRICS,
        tracing: Tracing = NO_TRACING,
        database: Availability | None = None,
    ) -> None:
        self._sessions = session_factory
        self._sender = sender
        self._loop = loop
        self._keys = KeyCache(box)
        self._settings = settings
        self._schedule = schedule or RetrySchedule(
            settings.retry_schedule, jitter=settings.retry_jitter
        )
        self._clock = clock
        self._metrics = metrics
        self._tracing = tracing
        self._database = database or Availability("database")
        self._claimer = Claimer(
            settings, Admission(settings, rng or random.Random()), clock, metrics
        )
        self._recorder = Recorder(settings, self._schedule, clock)
        self._ring: Ring | None = None
        self._finished: queue.Queue[tuple[Claim, InFlight] | None] = queue.Queue()
        self._saturated: set[str] = set()
        self._pulled: dict[str, float] = {}
        self._sending: Counter[str] = Counter()
        """Deliveries in flight here, by endpoint (handed to the loop, not yet recorded)."""
        self._watched: dict[str, float] = {}
        self._offered: dict[str, float] = {}
        self._state = threading.Lock()
        self._recording: threading.Thread | None = None
        self._ages = Ages()

    # -- transactions --------------------------------------------------------------

    def _transaction(self, what: str, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one write transaction. A connection the server dropped while
        it sat in the pool is retried once on a fresh one; an outage is
        :class:`DatabaseUnavailable`; anything else (a statement refused for what it
        carried) propagates."""
        for last in (False, True):
            try:
                with self._sessions() as session, session.begin():
                    lock_for_write(session)
                    return work(session)
            except SQLAlchemyError as exc:
                if not last and isinstance(exc, DBAPIError) and exc.connection_invalidated:
                    continue
                if not is_outage(exc):
                    raise
                self._metrics.own_failure("database")
                raise DatabaseUnavailable(f"{what}: {exc}") from exc
        raise AssertionError("unreachable")

    def _claim(
        self, ids: Sequence[str], pulls: dict[str, int] | None, room: int, leave: bool
    ) -> ClaimBatch:
        with self._tracing.span("webhook.claim", **{"catentio.deliveries": len(ids)}):
            return self._transaction(
                "claiming deliveries",
                lambda session: self._claimer.claim(session, ids, pulls, room, leave),
            )

    # -- one at a time (tests, replays) --------------------------------------------

    def deliver(self, delivery_id: str) -> Result:
        """Make the attempt that is due for ``delivery_id``, if this call wins the claim
        and the endpoint's policy admits it.

        Raises :class:`~worker.errors.DatabaseUnavailable` when the database fails; no
        attempt is spent and the caller may simply try again.
        """
        structlog.contextvars.bind_contextvars(delivery_id=delivery_id)
        return self.deliver_many([delivery_id])[delivery_id]

    def deliver_many(self, delivery_ids: Sequence[str]) -> dict[str, Result]:
        """Claim, send, wait for and record these deliveries; what became of each."""
        parent = self._tracing.current()
        batch = self._claim(delivery_ids, None, len(delivery_ids), False)
        results = dict(batch.results)
        if not batch.claims:
            return results
        spans = {
            c.delivery_id: self._tracing.start("webhook.deliver", parent) for c in batch.claims
        }
        spans_: dict[str, TraceSpan | None] = dict(spans)
        futures = [
            (claim, self._loop.submit(self._attempt(claim, spans[claim.delivery_id])))
            for claim in batch.claims
        ]
        finished = [self._result_of(claim, future) for claim, future in futures]
        recorded = self._record(finished, spans_)
        for item in recorded:
            results[item.delivery_id] = Result(item.status, item.retry_in, released=item.released)
        return results

    # -- the actor's way: hand over to the loop --------------------------------------

    def start(self, ring: Ring) -> None:
        """Start the recorder; ``ring`` enqueues messages (retries, releases, pulls)."""
        self._ring = ring
        if self._recording is None:
            self._recording = threading.Thread(
                target=self._record_forever, name="catentio-recorder", daemon=True
            )
            self._recording.start()

    def ring(self, delivery_ids: Sequence[str], pulls: Mapping[str, int] | None = None) -> None:
        """Claim what may go of ``delivery_ids`` (or, with ``pulls``, up to so many of
        each endpoint's backlog, all in one claim) and hand it to the sending loop;
        returns once handed over (waiting first only while the loop is full). Raises
        :class:`~worker.errors.DatabaseUnavailable` if the claim could not be made.

        With less room free than ids rung (or slots offered), what does not fit is
        rung again at once, for any worker: a room taken by other endpoints'
        deliveries (say, ones that never answer) must not keep this thread, and the
        deliveries it fetched, waiting for their deadline."""
        wanted = sum(max(1, n) for n in pulls.values()) if pulls else len(delivery_ids)
        room = self._loop.reserve(wanted, whole=self._ring is None)
        granted = _share(pulls, room) if pulls else {}
        try:
            batch = self._claim(delivery_ids[:room] if not pulls else (), granted, room, True)
        except BaseException:
            self._loop.release(room)
            raise
        # After the claim (a failed one rings them all): what did not fit.
        if pulls:
            ungranted = {e: max(1, n) for e, n in pulls.items() if e not in granted}
            self._enqueue_pulls(ungranted, timedelta(0))
        else:
            self._enqueue(delivery_ids[room:], timedelta(0))
        self._loop.release(room - len(batch.claims))
        if granted:
            # An endpoint that filled every slot it was granted may have more waiting.
            claimed = Counter(claim.target.id for claim in batch.claims)
            batch.saturated |= {e for e, n in granted.items() if claimed[e] >= n}
            self._forget_drained(granted, batch)
        self._hand_over(batch, self._tracing.current())

    def _forget_drained(self, granted: Mapping[str, int], batch: ClaimBatch) -> None:
        """An endpoint whose pull found fewer due than it was granted has drained."""
        drained = {e for e, n in granted.items() if batch.found[e] < n}
        if drained:
            with self._state:
                self._saturated -= drained

    def _hand_over(self, batch: ClaimBatch, parent: Any) -> None:
        held = [(i, r.retry_in) for i, r in batch.results.items() if r.retry_in is not None]
        now = time.monotonic()
        with self._state:
            self._saturated |= batch.saturated
            self._sending.update(claim.target.id for claim in batch.claims)
            # Left to a budget held elsewhere, with nothing of that endpoint in flight
            # here to pull them when it finishes: the holder pulls them as its slots
            # free, unless its last one finished before they were left (it found
            # nothing waiting, this claim found its budget full). Then nobody would,
            # so a pull follows a little later, for whichever worker takes it: at most
            # once per PULL_EVERY and endpoint while that budget stays full.
            watch = {
                e: n
                for e, n in batch.left.items()
                if not self._sending[e] and now - self._watched.get(e, -PULL_EVERY) >= PULL_EVERY
            }
            self._watched.update(dict.fromkeys(watch, now))
        self._enqueue_pulls(watch, timedelta(seconds=PULL_EVERY))
        started: list[Claim] = []
        for claim in batch.claims:
            span = self._tracing.start("webhook.deliver", parent)
            started.append(replace(claim, span=span) if span is not None else claim)
        if started:
            # One hand-over to the loop for the whole batch: it starts a task per claim.
            self._loop.submit(self._start(started))
        self._send_later([(i, d) for i, d in held if d is not None])

    async def _start(self, claims: list[Claim]) -> None:
        for claim in claims:
            task = asyncio.ensure_future(self._attempt(claim, claim.span))
            task.add_done_callback(partial(self._done, claim, self._ages.started()))

    def _done(self, claim: Claim, started: Bucket, future: InFlight) -> None:
        self._ages.finished(started)
        self._finished.put((claim, future))

    def _record_forever(self) -> None:
        while True:
            first = self._finished.get()
            if first is None:
                return
            items = [first]
            until = time.monotonic() + RECORD_WINDOW
            while len(items) < RECORD_BATCH:
                try:  # those finished already, first
                    more = self._finished.get_nowait()
                except queue.Empty:
                    # Then wait for more only while some that started lately are still
                    # in flight: once all have finished, waiting would only leave their
                    # slots empty, and one going for a second already (say, to a
                    # receiver that never answers) will not finish in the window.
                    if not self._ages.younger_than(YOUNG):
                        break
                    try:
                        more = self._finished.get(timeout=max(0.0, until - time.monotonic()))
                    except queue.Empty:
                        break
                if more is None:
                    self._finished.put(None)
                    break
                items.append(more)
            try:
                self._record_items(items)
            except Exception as exc:  # never let the recorder die: log, leases expire
                log.error("delivery.record_failed", deliveries=len(items), error=repr(exc))

    def _record_items(self, items: list[tuple[Claim, InFlight]]) -> None:
        finished = [self._result_of(claim, future) for claim, future in items]
        spans: dict[str, TraceSpan | None] = {c.delivery_id: c.span for c, _ in items}
        recorded: list[Recorded] = []
        deadline = time.monotonic() + self._settings.lease_margin.total_seconds()
        while True:
            try:
                recorded = self._record(finished, spans)
            except DatabaseUnavailable as exc:
                self._database.failed(exc)  # logged once for the process
                if time.monotonic() > deadline:
                    # The leases expire and the sweeper rings again: at-least-once.
                    log.error("delivery.record_failed", deliveries=len(finished), error=str(exc))
                    for span in spans.values():
                        self._tracing.end(span, exc)
                    break
                self._database.wait(RECORD_RETRY)
                continue
            self._database.succeeded()
            break
        self._loop.release(len(items))
        freed: Counter[str] = Counter(claim.target.id for claim, _ in items)
        now = time.monotonic()
        with self._state:
            # Under the lock a claim leaving deliveries takes to look at ``_sending``:
            # either it sees these still in flight, and this sees it saturated, or it
            # sees them gone and watches the endpoint itself.
            self._sending.subtract(freed)
            self._sending += Counter()  # drop the endpoints with none left in flight
            pulls = [
                e
                for e in freed
                if e in self._saturated or now - self._pulled.get(e, 0.0) >= PULL_EVERY
            ]
            for endpoint_id in pulls:
                self._pulled[endpoint_id] = now
        self._send_later([(r.delivery_id, r.retry_in) for r in recorded if r.retry_in], spans)
        released = [i for r in recorded for i in r.released]
        if released:
            self._enqueue(released, timedelta(0))
        every = self._settings.limited_retry.total_seconds()
        here: dict[str, int] = {}
        offers: dict[str, int] = {}
        for endpoint_id in pulls:
            with self._state:
                offer = endpoint_id in self._saturated and (
                    now - self._offered.get(endpoint_id, -every) >= every
                )
                if offer:
                    self._offered[endpoint_id] = now
            if offer:
                # Once per ``limited_retry`` the freed slots go to the broker instead, as
                # a pull any worker process may take: the budget is shared out, not kept
                # by whichever process happened to claim first. All of this batch's
                # offers go in one message (one claim), however many endpoints.
                offers[endpoint_id] = freed[endpoint_id]
            else:
                # Refill the slots just freed from the endpoint's backlog, here and now.
                here[endpoint_id] = freed[endpoint_id]
        self._enqueue_pulls(offers, timedelta(0))
        if here:
            self._pull_here(here)

    def _pull_here(self, pulls: dict[str, int]) -> None:
        """Claim due deliveries of endpoints we deliver to (up to so many slots each),
        all in one claim: those left for our budget, and (now and then) ones left by a
        worker that has gone since."""
        room = self._loop.reserve(sum(pulls.values()), timeout=0)
        granted = _share(pulls, room) if room else {}
        # No room here for some (the loop is full of other endpoints' deliveries): a
        # pull message for any worker, or their backlog would wait for the sweeper.
        self._enqueue_pulls({e: n for e, n in pulls.items() if e not in granted}, timedelta(0))
        if not granted:
            self._loop.release(room)
            return
        try:
            batch = self._claim((), granted, room, True)
        except DatabaseUnavailable as exc:
            self._loop.release(room)
            log.warning("delivery.pull_failed", endpoints=len(granted), error=str(exc))
            return
        self._loop.release(room - len(batch.claims))
        self._forget_drained(granted, batch)
        self._hand_over(batch, None)

    def _send_later(
        self,
        delays: Sequence[tuple[str, timedelta]],
        spans: dict[str, TraceSpan | None] | None = None,
    ) -> None:
        if spans and self._tracing.enabled:
            # Traced: one message per retry, rung inside the attempt's span, so that the
            # next attempt's span is its child (a message carries one trace context).
            for delivery_id, delay in delays:
                with self._tracing.activate(spans.get(delivery_id)):
                    self._enqueue([delivery_id], delay + timedelta(milliseconds=1))
            return
        for ids, delay_ms in group_by_delay(delays):
            self._enqueue(ids, timedelta(milliseconds=delay_ms))

    def _enqueue(self, delivery_ids: Sequence[str], delay: timedelta) -> None:
        if self._ring is not None and delivery_ids:
            self._ring(list(delivery_ids), int(delay.total_seconds() * 1000), None)

    def _enqueue_pulls(self, pulls: Mapping[str, int], delay: timedelta) -> None:
        if self._ring is None or not pulls:
            return
        offered = sorted(pulls.items())
        for start in range(0, len(offered), PULLS_PER_MESSAGE):
            chunk = dict(offered[start : start + PULLS_PER_MESSAGE])
            self._ring([], int(delay.total_seconds() * 1000), chunk)

    def close(self, timeout: float) -> None:
        """Let what is in flight finish and be recorded (up to ``timeout``), then stop."""
        end = time.monotonic() + timeout
        while self._loop.in_use and time.monotonic() < end:
            time.sleep(0.02)
        if self._recording is not None:
            self._finished.put(None)
            self._recording.join(max(0.1, end - time.monotonic()))
            self._recording = None

    # -- recording -------------------------------------------------------------------

    def _record(
        self, finished: list[Finished], spans: dict[str, TraceSpan | None]
    ) -> list[Recorded]:
        """Record ``finished`` in one transaction, end their spans and count them.

        A statement refused for what it carried (not an outage) is one attempt's fault:
        each is then recorded on its own, and one that still fails is recorded as an
        ``internal`` attempt instead. Raises :class:`DatabaseUnavailable` (nothing
        recorded) when the database is down."""
        if not finished:
            return []
        traced = [s for s in spans.values() if s is not None]
        try:
            with self._tracing.on_behalf_of(traced):
                recorded = self._transaction(
                    "recording attempts",
                    lambda session: self._recorder.record(session, finished),
                )
        except DatabaseUnavailable:
            raise
        except Exception:
            if len(finished) == 1:
                recorded = [self._record_as_internal(finished[0], spans)]
            else:
                recorded = [r for item in finished for r in self._record([item], spans)]
            return recorded
        by_id = {item.claim.delivery_id: item for item in finished}
        for item in recorded:
            self._count(by_id[item.delivery_id], item, spans.get(item.delivery_id))
        return recorded

    def _record_as_internal(self, item: Finished, spans: dict[str, TraceSpan | None]) -> Recorded:
        failure = internal("recording it", ValueError("the attempt's record was refused"))
        result = SendResult(duration=item.result.duration, error=failure)
        outcome = classify(
            result, now=self._clock(), retry_after_cap=self._settings.retry_after_cap
        )
        decided = plan(outcome, item.claim.cycle_attempts, self._schedule)
        again = Finished(
            claim=item.claim,
            started_at=item.started_at,
            headers={},
            result=result,
            outcome=outcome,
            retry_in=decided.retry_in,
            verdict=decided.verdict,
        )
        (recorded,) = self._transaction(
            "recording attempts", lambda session: self._recorder.record(session, [again])
        )
        self._count(again, recorded, spans.get(item.claim.delivery_id))
        return recorded

    def _count(self, item: Finished, recorded: Recorded, span: TraceSpan | None) -> None:
        claim = item.claim
        response = item.result.response
        code = response.status_code if response else None
        self._metrics.attempt_finished(
            item.verdict, status_class(code), item.result.duration, endpoint_id=claim.target.id
        )
        if claim.attempt_count == 0:
            self._metrics.first_attempt_latency(
                (item.started_at - claim.event_created_at).total_seconds()
            )
        if span is not None:
            span.set_attribute("catentio.delivery.id", claim.delivery_id)
            span.set_attribute("catentio.event.id", claim.event_id)
            span.set_attribute("catentio.endpoint.id", claim.target.id)
            span.set_attribute("catentio.attempt", claim.attempt_count + 1)
            span.set_attribute("catentio.delivery.status", str(recorded.status))
            self._tracing.end(span)

    # -- one attempt, on the loop ----------------------------------------------------

    def _result_of(self, claim: Claim, future: InFlight) -> Finished:
        try:
            return future.result()
        except BaseException as exc:  # cancelled at shutdown, or our own bug
            result = SendResult(duration=0.0, error=internal("sending it", exc))
            return self._finish(claim, self._clock(), {}, result)

    def _finish(
        self, claim: Claim, started_at: Any, headers: dict[str, str], result: SendResult
    ) -> Finished:
        outcome = classify(
            result, now=self._clock(), retry_after_cap=self._settings.retry_after_cap
        )
        decided = plan(outcome, claim.cycle_attempts, self._schedule)
        return Finished(
            claim=claim,
            started_at=started_at,
            headers=headers,
            result=result,
            outcome=outcome,
            retry_in=decided.retry_in,
            verdict=decided.verdict,
        )

    async def _attempt(self, claim: Claim, span: TraceSpan | None) -> Finished:
        started_at = self._clock()
        headers: dict[str, str] = {}
        if claim.failure is not None:
            return self._finish(claim, started_at, headers, SendResult(0.0, error=claim.failure))
        with self._tracing.activate(span):
            try:
                target = claim.target
                body = claim.body.encode("utf-8")
                headers = build_headers(
                    event_id=claim.event_id,
                    event_type=claim.event_type,
                    delivery_id=claim.delivery_id,
                    attempt=claim.attempt_count + 1,
                    timestamp=started_at,
                    body=body,
                    signing_keys=self._keys.signing_keys_of(target.secrets, now=started_at),
                    custom=target.headers,
                )
                for value in headers.values():
                    value.encode("ascii")  # what HTTP carries; stored rows may hold other
                refused = _url_refused(target.url)
                if refused is not None:  # stored before today's rules, or by hand
                    result = SendResult(duration=0.0, error=InvalidURL(refused))
                else:
                    with self._tracing.request("POST", target.url) as request:
                        result = await self._sender.post(target.url, body, headers)
                        request.set_response(
                            result.response.status_code if result.response else None
                        )
            except Exception as exc:  # anything our side did not expect, before a response
                result = SendResult(duration=0.0, error=internal("sending it", exc))
        return self._finish(claim, started_at, headers, result)


def _share(pulls: Mapping[str, int], room: int) -> dict[str, int]:
    """The slots each endpoint gets of ``room``, in the order offered (none with 0)."""
    granted: dict[str, int] = {}
    left = room
    for endpoint_id, slots in pulls.items():
        if left <= 0:
            break
        granted[endpoint_id] = min(max(1, slots), left)
        left -= granted[endpoint_id]
    return granted


__all__ = ["NOT_CLAIMED", "DeliveryEngine", "NotRecorded", "Result", "group_by_delay"]
