"""The dependencies every handler starts from: the request's session, its caller (key
checked, rate limit spent, workspace resolved) and its ``Idempotency-Key``.

``reader`` and ``writer`` are what routes declare; the portal can reuse
:func:`resolve_caller` with a credential of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.responses import Response

from outbox.database import lock_for_write
from outbox.errors import CatentioError
from worker.access.errors import AuthenticationFailed
from worker.access.keys import authenticate
from worker.access.principal import WORKSPACE_HEADER, Principal
from worker.api.context import ApiContext
from worker.api.envelope import data_body, error_body, json_response, list_body
from worker.api.errors import ApiError, Code, api_error_for
from worker.api.idempotency import HEADER, IdempotentRequest, check_key, request_hash
from worker.api.middleware import client_identity
from worker.errors import BrokerUnavailable

log = structlog.get_logger("worker.api")

bearer = HTTPBearer(auto_error=False, description="An API key: `Bearer cat_ak_…`.")


def context_of(request: Request) -> ApiContext:
    """The process's :class:`ApiContext`."""
    context: ApiContext = request.app.state.context
    return context


def request_session(request: Request) -> Iterator[Session]:
    """One session per request, closed when the request is done."""
    with context_of(request).sessions() as session:
        yield session


Work = Callable[[], tuple[int, object]]
"""A handler's work: (HTTP status, ``data`` in its wire form)."""


@dataclass(frozen=True)
class Caller:
    """An authenticated request: who, for which workspace, with which session."""

    principal: Principal
    workspace_id: str
    session: Session
    request_id: str
    context: ApiContext
    idempotent: IdempotentRequest | None = None

    def respond(
        self, work: Work, *, fields: Mapping[type[CatentioError], str] | None = None
    ) -> Response:
        """Run ``work`` and answer in the envelope, once per ``Idempotency-Key``.
        ``fields`` names the request field a domain error is about."""
        context = self.context
        if self.idempotent is None:
            status, data = self._run(work, fields)
            return self._response(status, data)
        stored = context.idempotency.begin(self.workspace_id, self.idempotent, now=context.clock())
        if stored is not None:
            return Response(
                stored.body.encode("utf-8"),
                status_code=stored.status,
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        try:
            status, data = self._run(work, fields)
        except BaseException:
            context.idempotency.abandon(self.workspace_id, self.idempotent.key)
            raise
        response = self._response(status, data)
        context.idempotency.finish(
            self.workspace_id,
            self.idempotent.key,
            status=response.status_code,
            body=bytes(response.body).decode("utf-8"),
        )
        return response

    def _run(
        self, work: Work, fields: Mapping[type[CatentioError], str] | None
    ) -> tuple[int, object]:
        try:
            return work()
        except ApiError as exc:
            return exc.status, exc
        except CatentioError as exc:
            field = next((f for kind, f in (fields or {}).items() if isinstance(exc, kind)), None)
            error = api_error_for(exc, field=field)
            return error.status, error

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction on the request's session that takes the write lock first
        (SQLite's ``BEGIN IMMEDIATE``), so reading and then writing in it waits its turn
        instead of failing when another writer got in between."""
        with self.session.begin():
            lock_for_write(self.session)
            yield self.session

    def ring(self, delivery_ids: Sequence[str]) -> None:
        """Wake the workers for these deliveries. Without a reachable broker they wait
        for the sweeper, which rings anything due and unrung."""
        ring = self.context.ring
        if ring is None or not delivery_ids:
            return
        try:
            ring(list(delivery_ids))
        except BrokerUnavailable as exc:
            log.warning("api.ring_failed", deliveries=len(delivery_ids), error=str(exc))

    def ok(self, data: object, *, status: int = 200) -> Response:
        """One resource in the envelope."""
        return self._response(status, data)

    def page(self, rows: list[object], *, limit: int, next_cursor: str | None) -> Response:
        """One page of a list in the envelope."""
        body = list_body(
            rows,
            limit=limit,
            next_cursor=next_cursor,
            request_id=self.request_id,
            now=self.context.clock(),
        )
        return json_response(body, 200)

    def _response(self, status: int, data: object) -> Response:
        now = self.context.clock()
        if isinstance(data, ApiError):
            return json_response(
                error_body(data, request_id=self.request_id, now=now), status, data.headers
            )
        return json_response(data_body(data, request_id=self.request_id, now=now), status)


def resolve_caller(
    request: Request,
    session: Session,
    token: str | None,
    workspace: str | None,
    *,
    write: bool,
) -> Caller:
    """Check the credential, spend one request of the workspace's budget and resolve
    the workspace. A request without a valid key is counted against its address."""
    context = context_of(request)
    state = request.state
    try:
        if token is None:
            raise AuthenticationFailed(
                "this endpoint needs an API key: Authorization: Bearer cat_ak_…"
            )
        principal = authenticate(context.sessions, token, now=context.clock(), session=session)
    except CatentioError as exc:
        _spend(request, context, client_identity(request.scope), write=write)
        raise api_error_for(exc) from None
    try:
        workspace_id = principal.workspace(workspace)
    except CatentioError as exc:
        _spend(request, context, client_identity(request.scope), write=write)
        raise api_error_for(exc, field=WORKSPACE_HEADER) from None
    _spend(request, context, f"ws:{workspace_id}", write=write)
    if write:
        try:
            principal.require_write()
        except CatentioError as exc:
            raise api_error_for(exc) from None
    return Caller(principal, workspace_id, session, state.request_id, context)


def _spend(request: Request, context: ApiContext, identity: str, *, write: bool) -> None:
    quota = context.limiter.hit(identity, write=write)
    headers = quota.headers()
    request.state.response_headers.update({k: v for k, v in headers.items() if k != "Retry-After"})
    if not quota.allowed:
        raise ApiError(
            Code.RATE_LIMITED,
            f"rate limit of {quota.limit} {'writes' if write else 'reads'} per window "
            "exceeded; retry after the Retry-After seconds",
            headers={"Retry-After": headers["Retry-After"]},
        )


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
WorkspaceHeader = Annotated[
    str | None,
    Header(
        alias=WORKSPACE_HEADER,
        description="With an all-workspaces key: the workspace to act for.",
    ),
]
RequestSession = Annotated[Session, Depends(request_session)]


def reader(
    request: Request,
    session: RequestSession,
    credentials: Credentials,
    workspace: WorkspaceHeader = None,
) -> Caller:
    """The caller of a read (GET)."""
    token = credentials.credentials if credentials is not None else None
    return resolve_caller(request, session, token, workspace, write=False)


async def idempotency_key(
    request: Request,
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description="Repeat the request safely: the same key within 24 h returns the "
            "first response without doing the work again.",
        ),
    ] = None,
) -> IdempotentRequest | None:
    """The request's ``Idempotency-Key`` with a hash of what it asks for."""
    if key is None:
        return None
    check_key(key)
    body = await request.body()
    digest = request_hash(request.method, request.url.path, request.url.query, body)
    return IdempotentRequest(key, digest)


def writer(
    request: Request,
    session: RequestSession,
    credentials: Credentials,
    idempotent: Annotated[IdempotentRequest | None, Depends(idempotency_key)],
    workspace: WorkspaceHeader = None,
) -> Caller:
    """The caller of a write (POST, PATCH, DELETE), with its ``Idempotency-Key``."""
    token = credentials.credentials if credentials is not None else None
    caller = resolve_caller(request, session, token, workspace, write=True)
    # Writes run their own transactions on this session: end the one auth read in.
    session.commit()
    return Caller(
        caller.principal,
        caller.workspace_id,
        session,
        caller.request_id,
        caller.context,
        idempotent,
    )


Reader = Annotated[Caller, Depends(reader)]
Writer = Annotated[Caller, Depends(writer)]
