"""``/me``: who the API key belongs to."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth.dependencies import CurrentPrincipal
from api.deps import SessionDep
from api.models.principal import PrincipalPublic
from api.models.workspace import Workspace, WorkspacePublic

__all__ = ["router"]

router = APIRouter(tags=["principals"])


@router.get("/me", response_model=PrincipalPublic)
def me(principal: CurrentPrincipal, session: SessionDep) -> PrincipalPublic:
    """The calling principal, its workspace and its attributes."""
    ws = session.get(Workspace, principal.workspace_id)
    assert ws is not None
    return PrincipalPublic(
        id=principal.id,
        name=principal.name,
        workspace=WorkspacePublic(id=ws.id, name=ws.name),
        attributes=dict(principal.attributes),
    )
