"""Templates: Jinja2 with autoescaping on for every template, so anything a receiver
sent back (bodies, headers, status texts) reaches the page as text, never as markup.

Filters shape values for people: times in UTC, pretty-printed JSON bodies, durations.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from outbox.envelope import isoformat


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value: datetime | None) -> str:
    return "" if value is None else isoformat(value)


def _pretty(text: str | None) -> str:
    """JSON pretty-printed (key order kept); anything else unchanged."""
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def environment() -> Environment:
    """The portal's template environment."""
    env = Environment(
        loader=PackageLoader("worker.portal", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, iso=_iso, pretty=_pretty, ms=_ms, percent=_percent)
    return env


class Renderer:
    """Renders a page, or for an htmx poll just the part of it that refreshes."""

    def __init__(self) -> None:
        self.env = environment()

    @staticmethod
    def _context(request: Request, context: dict[str, Any]) -> dict[str, Any]:
        root: str = request.scope.get("root_path", "")
        return {"request": request, "base": root.rstrip("/") + "/", **context}

    def page(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        *,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        """The whole page ``template`` with ``context`` (plus ``request``)."""
        html = self.env.get_template(template).render(self._context(request, context))
        return HTMLResponse(html, status_code=status_code, headers=headers)

    def fragment(self, request: Request, partial: str, context: dict[str, Any]) -> HTMLResponse:
        """A partial template (one a page includes): what an htmx poll swaps in."""
        html = self.env.get_template(partial).render(self._context(request, context))
        return HTMLResponse(html)
