"""``/connectors``: the connector catalog of this installation, each with its config JSON Schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.auth.dependencies import Authorize, Guard
from api.deps import SessionDep, StateDep
from api.models.connector import ConnectorPage, ConnectorPublic
from api.pagination import CursorParam, LimitParam
from api.responses import model_response
from api.services import connectors as svc
from api.services.base import Ctx

__all__ = ["router"]

router = APIRouter(prefix="/connectors", tags=["connectors"])


@router.get("", response_model=ConnectorPage)
def list_connectors(
    guard: Annotated[Guard, Authorize(svc.list_connectors)],
    state: StateDep,
    session: SessionDep,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Response:
    """Installed connectors, by name."""
    return model_response(svc.list_connectors(Ctx(state, session, guard), cursor=cursor, limit=limit))


@router.get("/{name}", response_model=ConnectorPublic)
def get_connector(
    guard: Annotated[Guard, Authorize(svc.get_connector)],
    state: StateDep,
    session: SessionDep,
    name: Annotated[str, Path(max_length=100)],
) -> Response:
    """One connector and its config schema."""
    return model_response(svc.get_connector(Ctx(state, session, guard), name))
