"""``/v1/portal/links``: the control plane mints a portal link for one of its workspaces.

The same :func:`~worker.portal.links.mint_link` as ``catentio-webhooks portal link``,
signed with the process's portal secret, which the portal mounted beside the API checks
links with. Only an admin key (``api-keys create --all-workspaces``) may mint links: a
workspace's own key is something its receivers' code holds, and a link is a session.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from fastapi import APIRouter
from starlette.responses import Response

from outbox.envelope import isoformat
from outbox.errors import CatentioError, ValidationError
from worker.api.access import Writer
from worker.api.envelope import Envelope, wire
from worker.api.errors import api_error_for
from worker.api.openapi import ERRORS
from worker.api.schemas.portal import PortalLink, PortalLinkCreate
from worker.portal.links import mint_link

log = structlog.get_logger("worker.api")

router = APIRouter(prefix="/v1/portal", tags=["portal"], responses=ERRORS)


@router.post(
    "/links",
    status_code=201,
    response_model=Envelope[PortalLink],
    summary="Mint a portal link (admin keys)",
)
def create_portal_link(caller: Writer, body: PortalLinkCreate | None = None) -> Response:
    """A signed, expiring URL that opens the portal of the workspace named in
    `X-Catentio-Workspace`, read-only or not. Needs an all-workspaces key with the
    write scope (any other key: 403). With `Idempotency-Key` the same link is answered
    again for 24 hours."""
    try:
        caller.principal.require_admin()
    except CatentioError as exc:
        raise api_error_for(exc) from None
    request = body or PortalLinkCreate()

    def work() -> tuple[int, object]:
        context = caller.context
        ttl = None if request.ttl_seconds is None else timedelta(seconds=request.ttl_seconds)
        link = mint_link(
            context.settings,
            context.portal_tokens,
            workspace_id=caller.workspace_id,
            now=context.clock(),
            ttl=ttl,
            read_only=request.read_only,
        )
        log.info(
            "api.portal_link_minted",
            workspace_id=link.workspace_id,
            read_only=link.read_only,
            expires_at=isoformat(link.expires_at),
            key_id=caller.principal.key_id,
        )
        out = PortalLink(
            url=link.url,
            workspace_id=link.workspace_id,
            read_only=link.read_only,
            expires_at=isoformat(link.expires_at),
        )
        return 201, wire(out)

    return caller.respond(work, fields={ValidationError: "ttlSeconds"})
