"""The Forjio envelope of every response, as pydantic models (and so in the OpenAPI).

``{"data": …, "error": null, "meta": {"requestId", "timestamp"}}``; lists add
``meta.page = {"limit", "hasMore", "nextCursor"}``; errors have ``data: null`` and
``error: {"code", "message", "field"}``. Field names are camelCase on the wire.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from starlette.responses import Response

from outbox.envelope import dumps, isoformat
from worker.api.errors import ApiError, Code

T = TypeVar("T")


class Shape(BaseModel):
    """Base of every model on the wire: camelCase names, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class PageMeta(Shape):
    """Where a list stops and how to go on."""

    limit: int
    has_more: bool
    next_cursor: str | None


class Meta(Shape):
    """The request's id (echoing ``X-Request-Id``) and when it was answered."""

    request_id: str
    timestamp: str


class ListMeta(Meta):
    """``meta`` of a list."""

    page: PageMeta


class ErrorDetail(Shape):
    """What went wrong: a stable code, a message for people, the field at fault."""

    code: Code
    message: str
    field: str | None = None


class Envelope(Shape, Generic[T]):
    """A successful response."""

    data: T
    error: None = None
    meta: Meta


class ListEnvelope(Shape, Generic[T]):
    """A page of a list."""

    data: list[T]
    error: None = None
    meta: ListMeta


class ErrorEnvelope(Shape):
    """An error response."""

    data: None = None
    error: ErrorDetail
    meta: Meta


def _meta(request_id: str, now: datetime) -> dict[str, Any]:
    return {"requestId": request_id, "timestamp": isoformat(now)}


def json_response(
    body: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> Response:
    """A response with the envelope's exact bytes."""
    return Response(
        dumps(body).encode("utf-8"),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def data_body(data: Any, *, request_id: str, now: datetime) -> dict[str, Any]:
    """The envelope of one resource (``data`` already in its wire form)."""
    return {"data": data, "error": None, "meta": _meta(request_id, now)}


def list_body(
    rows: list[Any], *, limit: int, next_cursor: str | None, request_id: str, now: datetime
) -> dict[str, Any]:
    """The envelope of one page of a list."""
    meta = _meta(request_id, now)
    meta["page"] = {"limit": limit, "hasMore": next_cursor is not None, "nextCursor": next_cursor}
    return {"data": rows, "error": None, "meta": meta}


def error_body(error: ApiError, *, request_id: str, now: datetime) -> dict[str, Any]:
    """The envelope of an error."""
    detail = {"code": error.code.value, "message": error.message, "field": error.field}
    return {"data": None, "error": detail, "meta": _meta(request_id, now)}


def wire(model: BaseModel) -> Any:
    """A model in its wire form (camelCase, JSON types)."""
    return model.model_dump(mode="json", by_alias=True)
