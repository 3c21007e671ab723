"""Minting portal links: what ``catentio-webhooks portal link`` and
``POST /v1/portal/links`` hand to a person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from outbox.errors import ValidationError
from worker.durations import format_duration
from worker.portal.tokens import Tokens
from worker.settings import DEFAULT_PORTAL_MAX_LINK_TTL, Settings

OPEN_PATH = "/portal/open"
"""Where a link is opened, below ``CATENTIO_PORTAL_URL``."""


@dataclass(frozen=True)
class PortalLink:
    """A signed, expiring URL into one workspace's portal."""

    url: str
    workspace_id: str
    read_only: bool
    expires_at: datetime


def mint_link(
    settings: Settings,
    tokens: Tokens,
    *,
    workspace_id: str,
    now: datetime,
    ttl: timedelta | None = None,
    read_only: bool = False,
) -> PortalLink:
    """A link that opens a portal session for ``workspace_id`` until ``now + ttl``.

    Raises ``ValidationError`` for a bad workspace id or a lifetime that is not
    positive or longer than seven days.
    """
    ttl = settings.portal_link_ttl if ttl is None else ttl
    if not timedelta(0) < ttl <= DEFAULT_PORTAL_MAX_LINK_TTL:
        raise ValidationError(
            f"a portal link lives more than 0s and at most "
            f"{format_duration(DEFAULT_PORTAL_MAX_LINK_TTL)}, not {format_duration(ttl)}"
        )
    token, grant = tokens.mint_link(workspace_id, ttl=ttl, read_only=read_only, now=now)
    url = f"{settings.portal_url}{OPEN_PATH}?{urlencode({'token': token})}"
    return PortalLink(url, grant.workspace_id, grant.read_only, grant.expires_at)
