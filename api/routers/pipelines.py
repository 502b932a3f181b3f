"""``/pipelines``: CRUD of pipelines, validated against the connector catalog; writes audited.
The work is done by :mod:`api.services.pipelines` (shared with GraphQL)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.auth.dependencies import Authorize, Guard
from api.deps import SessionDep, StateDep
from api.models.pipeline import PipelineCreate, PipelinePage, PipelinePublic, PipelineStatus, PipelineUpdate
from api.pagination import CursorParam, LimitParam
from api.responses import model_response
from api.services import pipelines as svc
from api.services.base import Ctx

__all__ = ["router"]

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.get("", response_model=PipelinePage)
def list_pipelines(
    guard: Annotated[Guard, Authorize(svc.list_pipelines)],
    state: StateDep,
    session: SessionDep,
    tag: Annotated[
        str | None, Query(max_length=200, description="Only pipelines with this tag, `key` or `key=value`.")
    ] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Response:
    """Pipelines of the caller's workspace, oldest first."""
    return model_response(svc.list_pipelines(Ctx(state, session, guard), tag=tag, cursor=cursor, limit=limit))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PipelinePublic)
def create_pipeline(
    guard: Annotated[Guard, Authorize(svc.create_pipeline)],
    body: PipelineCreate,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """Create a pipeline from connections of this workspace; the caller becomes its owner."""
    return model_response(svc.create_pipeline(Ctx(state, session, guard), body), status_code=201)


@router.get("/{pipeline_id}", response_model=PipelinePublic)
def get_pipeline(
    guard: Annotated[Guard, Authorize(svc.get_pipeline)],
    pipeline_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
) -> Response:
    return model_response(svc.get_pipeline(Ctx(state, session, guard)))


@router.get("/{pipeline_id}/status", response_model=PipelineStatus)
def pipeline_status(
    guard: Annotated[Guard, Authorize(svc.pipeline_status)],
    pipeline_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """What the pipeline holds on its source now. For a CDC pipeline: its replication slot's lag
    and retained WAL, each against its threshold (`ok`, `message`), asked of the source live."""
    return model_response(svc.pipeline_status(Ctx(state, session, guard)))


@router.patch("/{pipeline_id}", response_model=PipelinePublic)
def update_pipeline(
    guard: Annotated[Guard, Authorize(svc.update_pipeline)],
    pipeline_id: uuid.UUID,
    body: PipelineUpdate,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """Change some fields; the result is validated as a whole, like a create."""
    return model_response(svc.update_pipeline(Ctx(state, session, guard), body))


@router.delete("/{pipeline_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_pipeline(
    guard: Annotated[Guard, Authorize(svc.delete_pipeline)],
    pipeline_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """Delete a pipeline and its stream state history (the audit log keeps the record)."""
    svc.delete_pipeline(Ctx(state, session, guard))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
