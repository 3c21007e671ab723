"""The outermost layer of every request (pure ASGI, so it costs little):

- the request id: an incoming ``X-Request-Id`` (if sane) or a new ``req_…``, bound into
  the logs and echoed in the ``X-Request-Id`` response header and ``meta.requestId``;
- the body limit: a body over the limit is answered ``413 PAYLOAD_TOO_LARGE`` before
  anything reads it;
- headers handlers leave in ``scope["state"]["response_headers"]`` (the rate limit's)
  added to the response, errors included; a request that reached no handler (an
  unknown path) is counted against its client address, so it carries them too —
  except below ``unmetered`` prefixes (the portal's pages, which the API's budget
  does not cover);
- one log line per request.
"""

from __future__ import annotations

import re
import time
from typing import Any

import anyio.to_thread
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from outbox import ids
from worker.api.context import ApiContext
from worker.api.envelope import error_body, json_response
from worker.api.errors import ApiError, Code

log = structlog.get_logger("worker.api")

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def client_identity(scope: Scope) -> str:
    """The rate-limit identity of a caller without a valid key: its address."""
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


class RequestContext:
    """Request id, body limit, extra response headers and the request's log line.

    The limits come from the app's :class:`ApiContext` (``app.state.context``).
    """

    def __init__(self, app: ASGIApp, *, body_margin: int, unmetered: tuple[str, ...] = ()) -> None:
        self.app = app
        self.body_margin = body_margin
        self.unmetered = unmetered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context: ApiContext = scope["app"].state.context
        max_body_bytes = context.settings.max_body_bytes + self.body_margin
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else ids.new_id(ids.REQUEST)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        extra: dict[str, str] = {}
        state["response_headers"] = extra
        method = scope["method"]
        metered = not scope["path"].startswith(self.unmetered)
        status_seen: list[int] = []

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
                if metered and "X-RateLimit-Limit" not in extra:
                    quota = await anyio.to_thread.run_sync(
                        _anonymous_hit, context, client_identity(scope), method in WRITE_METHODS
                    )
                    extra.update({k: v for k, v in quota.headers().items() if k != "Retry-After"})
                raw = list(message.get("headers", []))
                raw.append((b"x-request-id", request_id.encode("latin-1")))
                raw.extend(
                    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()
                )
                message = {**message, "headers": raw}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            too_large = _too_large(headers, max_body_bytes)
            if too_large is not None:
                await json_response(
                    error_body(too_large, request_id=request_id, now=context.clock()),
                    too_large.status,
                )(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
            log.info(
                "api.request",
                method=method,
                path=scope["path"],
                status=status_seen[0] if status_seen else None,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )


def _anonymous_hit(context: ApiContext, identity: str, write: bool) -> Any:
    return context.limiter.hit(identity, write=write)


def _too_large(headers: dict[str, str], max_body_bytes: int) -> ApiError | None:
    length = headers.get("content-length")
    if length is None:
        if "chunked" in headers.get("transfer-encoding", ""):
            return ApiError(
                Code.VALIDATION_ERROR,
                "send the body with a Content-Length (chunked bodies are not accepted)",
            )
        return None
    try:
        size = int(length)
    except ValueError:
        return ApiError(Code.VALIDATION_ERROR, "Content-Length is not a number")
    if size > max_body_bytes:
        return ApiError(
            Code.PAYLOAD_TOO_LARGE,
            f"request body is {size} bytes, over the {max_body_bytes} limit",
        )
    return None
