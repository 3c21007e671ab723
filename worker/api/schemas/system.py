"""``/v1/system``: health and version."""

from __future__ import annotations

from typing import Literal

from worker.api.envelope import Shape


class Check(Shape):
    """One dependency's state."""

    ok: bool
    detail: str | None = None


class SystemHealth(Shape):
    """Database and broker reachable?"""

    status: Literal["ok", "unavailable"]
    database: Check
    broker: Check


class Info(Shape):
    """What is answering."""

    name: str
    version: str
    api_version: Literal["v1"]
