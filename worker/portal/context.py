"""What every portal request handler needs, built once per app."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from outbox.clock import Clock, utcnow
from worker.endpoints.secretbox import SecretBox
from worker.ops.replay_runs import ReplayRunner
from worker.portal.rendering import Renderer
from worker.portal.tokens import Tokens
from worker.settings import Settings

Ring = Callable[[Sequence[str]], None]
"""Asks the workers to look at these deliveries now (``Bell.ring``)."""


@dataclass(frozen=True, kw_only=True)
class PortalContext:
    """The portal's edges: settings, database, signing tokens, the runner of bulk
    replays, and for actions the secret box (rotation) and the bell (replays).
    ``ring`` None: the sweeper rings."""

    settings: Settings
    sessions: sessionmaker[Session]
    tokens: Tokens
    renderer: Renderer
    replays: ReplayRunner
    box: SecretBox | None = None
    ring: Ring | None = None
    clock: Clock = utcnow


def portal_of(request: Request) -> PortalContext:
    """The context of the app serving ``request``."""
    portal: PortalContext = request.app.state.portal
    return portal
