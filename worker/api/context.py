"""What the API's handlers share: settings, sessions, the secret box, the limiter, the
idempotency store, the replay runner, the portal's signing tokens, the clock, the bell
that wakes the workers, metrics and tracing. The portal mounted beside the API uses the
same ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from outbox.clock import Clock, utcnow
from worker.api.idempotency import IdempotencyStore
from worker.api.ratelimit import RateLimiter
from worker.endpoints.secretbox import SecretBox
from worker.ops.replay_runs import ReplayRunner
from worker.portal.tokens import Tokens
from worker.settings import Settings
from worker.telemetry.exporter import Telemetry
from worker.telemetry.tracing import NO_TRACING, Tracing

Ring = Callable[[Sequence[str]], None]
"""Asks the workers to look at these deliveries now."""


@dataclass
class ApiContext:
    """Built once per API process (:func:`worker.api.app.create_app`)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    box: SecretBox
    limiter: RateLimiter
    idempotency: IdempotencyStore
    replays: ReplayRunner
    portal_tokens: Tokens
    ring: Ring | None = None
    clock: Clock = utcnow
    # The process's metrics registry (None: metrics off) and tracing.
    telemetry: Telemetry | None = None
    tracing: Tracing = NO_TRACING
