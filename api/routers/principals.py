"""``/me``: who the API key belongs to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from api.auth.dependencies import Authorize, Guard
from api.deps import SessionDep, StateDep
from api.models.principal import PrincipalPublic
from api.responses import model_response
from api.services import principals as svc
from api.services.base import Ctx

__all__ = ["router"]

router = APIRouter(tags=["principals"])


@router.get("/me", response_model=PrincipalPublic)
def me(guard: Annotated[Guard, Authorize(svc.me)], state: StateDep, session: SessionDep) -> Response:
    """The calling principal, its workspace and its attributes."""
    return model_response(svc.me(Ctx(state, session, guard)))
