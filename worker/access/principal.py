"""The caller of a request, once its credential was checked: a workspace key or an admin."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from outbox.errors import ValidationError
from outbox.validation import check_workspace_id
from worker.access.errors import PermissionDenied

WORKSPACE_HEADER = "X-Catentio-Workspace"
"""How an admin key names the workspace it acts for."""


class Scope(StrEnum):
    """What a key may do: ``read`` (GET) or ``write`` (everything)."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is calling. ``workspace_id`` None: an admin key, for any workspace."""

    key_id: str
    workspace_id: str | None
    scope: Scope

    @property
    def is_admin(self) -> bool:
        """Whether the key acts for any workspace."""
        return self.workspace_id is None

    def workspace(self, requested: str | None) -> str:
        """The workspace this request acts for.

        A workspace key acts for its own (naming another is refused); an admin key must
        name one with ``X-Catentio-Workspace``.
        """
        if self.workspace_id is not None:
            if requested is not None and requested != self.workspace_id:
                raise PermissionDenied(f"this key belongs to another workspace than {requested!r}")
            return self.workspace_id
        if requested is None:
            raise ValidationError(
                f"an all-workspaces key must name the workspace in {WORKSPACE_HEADER}"
            )
        return check_workspace_id(requested)

    def require_write(self) -> None:
        """Refuse a read-only key."""
        if self.scope is not Scope.WRITE:
            raise PermissionDenied("this key is read-only (scope 'read')")

    def require_admin(self) -> None:
        """Refuse a key of one workspace (what only an all-workspaces key may do)."""
        if not self.is_admin:
            raise PermissionDenied("only an all-workspaces (admin) API key may do this")
