"""``/v1/portal/links``: what minting a portal link takes and gives."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictInt

from worker.api.envelope import Shape
from worker.api.schemas.common import Timestamp
from worker.settings import DEFAULT_PORTAL_MAX_LINK_TTL

MAX_TTL_SECONDS = int(DEFAULT_PORTAL_MAX_LINK_TTL.total_seconds())
"""The longest lifetime a link may be given (seven days)."""


class PortalLinkCreate(Shape):
    """A link into the portal of the workspace named in ``X-Catentio-Workspace``."""

    ttl_seconds: Annotated[
        StrictInt | None,
        Field(
            ge=1,
            le=MAX_TTL_SECONDS,
            description="How long the link can be opened, in seconds (at most 604800, "
            "seven days). Default: `CATENTIO_PORTAL_LINK_TTL` (1 hour).",
            examples=[3600],
        ),
    ] = None
    read_only: StrictBool = Field(
        default=False, description="The session it opens may look but not act."
    )


class PortalLink(Shape):
    """A signed, expiring URL into one workspace's portal. Anyone holding it can open
    that portal until ``expiresAt``: hand it over like a password."""

    url: str = Field(description="`CATENTIO_PORTAL_URL/portal/open?token=…`.")
    workspace_id: str
    read_only: bool
    expires_at: Timestamp
