"""The engine: claim batches, send them on the loop, record them in batches.

Two ways in, one code path:

* ``deliver_many(ids)`` / ``deliver(id)``: claim, send, wait, record, return what
  happened to each delivery (the one-at-a-time API tests and replays drive; over-budget
  deliveries are held, ``concurrency``, as before).
* ``ring(ids)``, the actor's: the dramatiq thread reserves room on the sending loop,
  claims, hands the claims to the loop and returns. Each finished attempt goes to the
  recorder thread, which writes whatever has finished in one transaction, then rings
  retries (one delayed message per group of similar delays) and released deliveries,
  and *pulls*: an endpoint whose due deliveries were left for lack of budget gets its
  freed slots refilled from its backlog at once by the worker that freed them, so a
  long backlog drains without a message per delivery and without re-ringing; a delayed
  pull message now and then lets every worker process take part.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import timedelta
from functools import partial

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from outbox.clock import Clock, utcnow
from outbox.errors import DatabaseUnavailable, InvalidEndpointURL
from worker.admission import Admission
from worker.engine.claim import Claim, ClaimBatch, Claimer
from worker.engine.keys import KeyCache
from worker.engine.loop import SendingLoop
from worker.engine.record import Finished, Recorded, Recorder
from worker.engine.results import NOT_CLAIMED, Result
from worker.engine.send import AsyncSender
from worker.engine.transition import plan
from worker.errors import InvalidURL
from worker.policy import RetrySchedule, classify
from worker.request import build_headers
from worker.sender import SendResult
from worker.settings import Settings
from worker.urls import check_endpoint_url

log = structlog.get_logger("worker.engine")

Ring = Callable[[Sequence[str], int, str | None, int], None]
"""Enqueue one message, after this many milliseconds: for these deliveries, or (an
endpoint id and a number of slots) to pull that many of the endpoint's backlog."""

RECORD_BATCH = 500
"""Finished attempts written in one transaction at most."""

PULL_EVERY = 1.0
"""Seconds between pulls of an endpoint this process delivers to but did not see
saturated: deliveries left by a worker that has since gone are picked up this way."""

RECORD_RETRY = 0.5
"""Seconds between tries to record while the database is unavailable."""


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


class DeliveryEngine:
    """Claims, sends and records deliveries for one process."""

    def __init__(
        self,
        *,
        engine: Engine,
        sender: AsyncSender,
        loop: SendingLoop,
        keys: KeyCache,
        settings: Settings,
        schedule: RetrySchedule | None = None,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self._sender = sender
        self._loop = loop
        self._keys = keys
        self._settings = settings
        self._schedule = schedule or RetrySchedule(
            settings.retry_schedule, jitter=settings.retry_jitter
        )
        self._clock = clock
        admission = Admission(settings, rng or random.Random())
        self._claimer = Claimer(engine, settings, admission, clock)
        self._recorder = Recorder(engine, settings, self._schedule, clock)
        self._ring: Ring | None = None
        self._finished: queue.Queue[tuple[Claim, Future[Finished]] | None] = queue.Queue()
        self._flying: Counter[str] = Counter()
        self._saturated: set[str] = set()
        self._pulled: dict[str, float] = {}
        self._shared: dict[str, float] = {}
        self._state = threading.Lock()
        self._recording: threading.Thread | None = None

    @property
    def database(self) -> Engine:
        """The engine claims and records go through."""
        return self._claimer.database

    @database.setter
    def database(self, engine: Engine) -> None:
        self._claimer.database = engine
        self._recorder.database = engine

    # -- one at a time (tests, replays) --------------------------------------------

    def deliver(self, delivery_id: str) -> Result:
        """Make the attempt that is due for ``delivery_id``, if this call wins the claim
        and the endpoint's policy admits it.

        Raises :class:`~outbox.errors.DatabaseUnavailable` when the database fails; no
        attempt is spent and the caller may simply try again.
        """
        return self.deliver_many([delivery_id])[delivery_id]

    def deliver_many(self, delivery_ids: Sequence[str]) -> dict[str, Result]:
        """Claim, send, wait for and record these deliveries; what became of each."""
        try:
            batch = self._claimer.claim(
                delivery_ids, room=len(delivery_ids), leave_over_budget=False
            )
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"claiming {len(delivery_ids)} deliveries: {exc}") from exc
        results = dict(batch.results)
        if batch.claims:
            finished = [self._loop.submit(self._attempt(claim)).result() for claim in batch.claims]
            try:
                recorded = self._recorder.record(finished)
            except SQLAlchemyError as exc:
                # The requests went out but cannot be recorded. No attempt is counted;
                # the leases expire and the sweeper rings again: at-least-once.
                raise DatabaseUnavailable(f"recording attempts: {exc}") from exc
            for item in recorded:
                results[item.delivery_id] = Result(
                    item.status, item.retry_in, released=item.released
                )
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

    def ring(self, delivery_ids: Sequence[str], pull: str | None = None, slots: int = 0) -> None:
        """Claim what may go of ``delivery_ids`` (or up to ``slots`` of endpoint
        ``pull``'s backlog) and hand it to the sending loop; returns once handed over
        (waiting first while the loop is full)."""
        wanted = max(1, slots) if pull is not None else len(delivery_ids)
        room = self._loop.reserve(wanted, whole=True)
        try:
            if pull is not None:
                batch = self._claimer.pull(pull, room=room)
            else:
                batch = self._claimer.claim(delivery_ids, room=room, leave_over_budget=True)
        except SQLAlchemyError as exc:
            self._loop.release(room)
            raise DatabaseUnavailable(f"claiming deliveries: {exc}") from exc
        self._loop.release(room - len(batch.claims))
        if pull is not None and len(batch.claims) == room:
            batch.saturated.add(pull)  # it had at least as many waiting: more may wait
        self._hand_over(batch)

    def _hand_over(self, batch: ClaimBatch) -> None:
        held = [(i, r.retry_in) for i, r in batch.results.items() if r.retry_in is not None]
        now = time.monotonic()
        every = self._settings.limited_retry.total_seconds()
        with self._state:
            for claim in batch.claims:
                self._flying[claim.target.id] += 1
            self._saturated |= batch.saturated
            shared = [e for e in batch.saturated if now - self._shared.get(e, -every) >= every]
            for endpoint_id in shared:
                self._shared[endpoint_id] = now
        for claim in batch.claims:
            future = self._loop.submit(self._attempt(claim))
            future.add_done_callback(partial(self._done, claim))
        self._send_later([(i, d) for i, d in held if d is not None])
        for endpoint_id in shared:
            # Deliveries were left for lack of budget. This process pulls them as its
            # own slots free; once per ``limited_retry`` the broker offers a pull to any
            # worker too, so every process takes part (and one whose budget is held by
            # others looks again later without touching a row).
            self._enqueue_pull(endpoint_id, 1, self._settings.limited_retry)

    def _done(self, claim: Claim, future: Future[Finished]) -> None:
        self._finished.put((claim, future))

    def _record_forever(self) -> None:
        while True:
            first = self._finished.get()
            if first is None:
                return
            items = [first]
            while len(items) < RECORD_BATCH:
                try:
                    more = self._finished.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._finished.put(None)
                    break
                items.append(more)
            self._record_items(items)

    def _record_items(self, items: list[tuple[Claim, Future[Finished]]]) -> None:
        finished: list[Finished] = []
        for claim, future in items:
            try:
                finished.append(future.result())
            except BaseException as exc:  # cancelled at shutdown, or our own bug
                log.error(
                    "delivery.send_failed",
                    delivery_id=claim.delivery_id,
                    endpoint_id=claim.target.id,
                    error=repr(exc),
                )
        recorded: list[Recorded] = []
        deadline = time.monotonic() + self._settings.lease_margin.total_seconds()
        while finished:
            try:
                recorded = self._recorder.record(finished)
                break
            except SQLAlchemyError as exc:
                if time.monotonic() > deadline:
                    # The leases expire and the sweeper rings again: at-least-once.
                    log.error("delivery.record_failed", deliveries=len(finished), error=str(exc))
                    break
                time.sleep(RECORD_RETRY)
        self._loop.release(len(items))
        freed: Counter[str] = Counter(claim.target.id for claim, _ in items)
        now = time.monotonic()
        with self._state:
            self._flying.subtract(freed)
            pulls = [
                e
                for e in freed
                if e in self._saturated or now - self._pulled.get(e, 0.0) >= PULL_EVERY
            ]
            for endpoint_id in pulls:
                self._pulled[endpoint_id] = now
        self._send_later([(r.delivery_id, r.retry_in) for r in recorded if r.retry_in])
        released = [i for r in recorded for i in r.released]
        if released:
            self._enqueue(released, timedelta(0))
        for endpoint_id in pulls:
            # Refill the slots just freed from the endpoint's backlog, here and now.
            self._pull_here(endpoint_id, freed[endpoint_id])

    def _pull_here(self, endpoint_id: str, slots: int) -> None:
        """Look for due deliveries of an endpoint we deliver to (now and then): ones left
        by a worker that has gone since are picked up this way."""
        room = self._loop.reserve(slots, timeout=0)
        if not room:
            return
        try:
            batch = self._claimer.pull(endpoint_id, room=room)
        except SQLAlchemyError as exc:
            self._loop.release(room)
            log.warning("delivery.pull_failed", endpoint_id=endpoint_id, error=str(exc))
            return
        self._loop.release(room - len(batch.claims))
        if len(batch.claims) + len(batch.results) < room:
            with self._state:  # its backlog is drained
                self._saturated.discard(endpoint_id)
        self._hand_over(batch)

    def _send_later(self, delays: Sequence[tuple[str, timedelta]]) -> None:
        for ids, delay_ms in group_by_delay(delays):
            self._enqueue(ids, timedelta(milliseconds=delay_ms))

    def _enqueue(self, delivery_ids: Sequence[str], delay: timedelta) -> None:
        if self._ring is None or not delivery_ids:
            return
        try:
            self._ring(list(delivery_ids), int(delay.total_seconds() * 1000), None, 0)
        except Exception as exc:
            # The rows already hold their next attempt times; the sweeper rings them.
            log.warning("delivery.resend_failed", deliveries=len(delivery_ids), error=repr(exc))

    def _enqueue_pull(self, endpoint_id: str, slots: int, delay: timedelta) -> None:
        if self._ring is None:
            return
        try:
            self._ring([], int(delay.total_seconds() * 1000), endpoint_id, slots)
        except Exception as exc:
            # The sweeper rings the endpoint's deliveries once it has none in flight.
            log.warning("delivery.pull_resend_failed", endpoint_id=endpoint_id, error=repr(exc))

    def close(self, timeout: float) -> None:
        """Let what is in flight finish and be recorded (up to ``timeout``), then stop."""
        end = time.monotonic() + timeout
        while self._loop.in_use and time.monotonic() < end:
            time.sleep(0.02)
        if self._recording is not None:
            self._finished.put(None)
            self._recording.join(max(0.1, end - time.monotonic()))
            self._recording = None

    # -- one attempt, on the loop ----------------------------------------------------

    async def _attempt(self, claim: Claim) -> Finished:
        target = claim.target
        started_at = self._clock()
        body = claim.body.encode("utf-8")
        headers = build_headers(
            event_id=claim.event_id,
            event_type=claim.event_type,
            delivery_id=claim.delivery_id,
            attempt=claim.attempt_count + 1,
            timestamp=started_at,
            body=body,
            signing_keys=self._keys.signing_keys(target.secrets, now=started_at),
            custom=target.headers,
        )
        try:
            check_endpoint_url(target.url)
        except InvalidEndpointURL as exc:  # stored before today's rules, or edited in SQL
            result = SendResult(duration=0.0, error=InvalidURL(str(exc)))
        else:
            result = await self._sender.post(target.url, body, headers)
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


__all__ = ["NOT_CLAIMED", "DeliveryEngine", "Result", "group_by_delay"]
