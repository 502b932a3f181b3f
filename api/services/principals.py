"""Who the caller is."""

from __future__ import annotations

from api.models.principal import PrincipalPublic
from api.models.workspace import Workspace, WorkspacePublic
from api.services.base import Ctx, operation

__all__ = ["me"]


@operation("principal:read_self")
def me(ctx: Ctx) -> PrincipalPublic:
    """The calling principal, its workspace and its attributes."""
    principal = ctx.principal
    ws = ctx.session.get(Workspace, principal.workspace_id)
    assert ws is not None
    return PrincipalPublic(
        id=principal.id,
        name=principal.name,
        workspace=WorkspacePublic(id=ws.id, name=ws.name),
        attributes=dict(principal.attributes),
    )
