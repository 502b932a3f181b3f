"""``/connections``: CRUD of connector configs (secrets encrypted at rest), plus ``check`` and
``discover``. The work is done by :mod:`api.services.connections` (shared with GraphQL)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from api.auth.dependencies import Authorize, Guard
from api.deps import SessionDep, StateDep
from api.models.connection import (
    CheckResult,
    ConnectionCreate,
    ConnectionPage,
    ConnectionPublic,
    ConnectionUpdate,
    DiscoverResult,
)
from api.pagination import CursorParam, LimitParam
from api.responses import model_response
from api.services import connections as svc
from api.services.base import Ctx

__all__ = ["router"]

router = APIRouter(prefix="/connections", tags=["connections"])


@router.get("", response_model=ConnectionPage)
def list_connections(
    guard: Annotated[Guard, Authorize(svc.list_connections)],
    state: StateDep,
    session: SessionDep,
    connector: Annotated[str | None, Query(max_length=100, description="Only this connector.")] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Response:
    """Connections of the caller's workspace, oldest first."""
    return model_response(
        svc.list_connections(Ctx(state, session, guard), connector=connector, cursor=cursor, limit=limit)
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ConnectionPublic)
def create_connection(
    guard: Annotated[Guard, Authorize(svc.create_connection)],
    body: ConnectionCreate,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """Create a connection. The config is validated by the connector; its secrets are encrypted."""
    return model_response(svc.create_connection(Ctx(state, session, guard), body), status_code=201)


@router.get("/{connection_id}", response_model=ConnectionPublic)
def get_connection(
    guard: Annotated[Guard, Authorize(svc.get_connection)],
    connection_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
) -> Response:
    return model_response(svc.get_connection(Ctx(state, session, guard)))


@router.patch("/{connection_id}", response_model=ConnectionPublic)
def update_connection(
    guard: Annotated[Guard, Authorize(svc.update_connection)],
    connection_id: uuid.UUID,
    body: ConnectionUpdate,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """Rename, or change config keys (merged; omitted keys, secrets included, keep their values)."""
    return model_response(svc.update_connection(Ctx(state, session, guard), body))


@router.delete("/{connection_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_connection(
    guard: Annotated[Guard, Authorize(svc.delete_connection)],
    connection_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """Delete a connection no pipeline uses (409 naming the pipelines otherwise)."""
    svc.delete_connection(Ctx(state, session, guard))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{connection_id}/check", response_model=CheckResult)
def check_connection(
    guard: Annotated[Guard, Authorize(svc.check_connection)],
    connection_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
    role: Annotated[
        Literal["source", "destination"] | None,
        Query(description="Side to check; default: source when the connector can be one."),
    ] = None,
) -> Response:
    """Connect with the stored config and report success, or the connector's error as a problem."""
    return model_response(svc.check_connection(Ctx(state, session, guard), role=role))


@router.post("/{connection_id}/discover", response_model=DiscoverResult)
def discover_connection(
    guard: Annotated[Guard, Authorize(svc.discover_connection)],
    connection_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """The streams the source offers: columns with Arrow and native types, keys, cursor candidates."""
    return model_response(svc.discover_connection(Ctx(state, session, guard)))
