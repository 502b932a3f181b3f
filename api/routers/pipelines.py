"""``/pipelines``: CRUD of pipelines, validated against the connector catalog; writes audited."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.auth.dependencies import Authorize, Guard
from api.deps import RegistryDep, SessionDep
from api.errors import Problem
from api.models.base import utcnow
from api.models.connection import Connection
from api.models.pipeline import (
    Pipeline,
    PipelineCreate,
    PipelineEndpoint,
    PipelinePage,
    PipelinePublic,
    PipelineUpdate,
)
from api.pagination import CursorParam, LimitParam, after_key, decode_cursor, encode_cursor
from api.pipeline_config import build_spec, resolve_connection
from openfuse_connectors.spec import SchemaDrift, StreamSpec

__all__ = ["router", "to_public"]

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


def _endpoint(session: Session, cache: dict[uuid.UUID, Connection], cid: uuid.UUID) -> PipelineEndpoint:
    conn = cache.get(cid) or session.get(Connection, cid)
    assert conn is not None, f"pipeline references missing connection {cid}"  # a foreign key guarantees it
    cache[cid] = conn
    return PipelineEndpoint(connection_id=conn.id, connection_name=conn.name, connector=conn.connector)


def to_public(
    session: Session, row: Pipeline, cache: dict[uuid.UUID, Connection] | None = None
) -> PipelinePublic:
    cache = {} if cache is None else cache
    return PipelinePublic(
        id=row.id,
        name=row.name,
        source=_endpoint(session, cache, row.source_connection_id),
        destination=_endpoint(session, cache, row.destination_connection_id),
        streams=[StreamSpec.model_validate(s) for s in row.spec.get("streams", [])],
        schema_drift=SchemaDrift(row.spec.get("schema_drift", SchemaDrift.EVOLVE.value)),
        schedule=row.schedule,
        tags=row.tags,
        batch_size=int(row.spec.get("batch_size", 100_000)),
        owner_id=row.owner_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _name_taken(
    session: Session, workspace_id: uuid.UUID, name: str, *, other_than: uuid.UUID | None = None
) -> None:
    stmt = select(Pipeline.id).where(Pipeline.workspace_id == workspace_id, Pipeline.name == name)
    if other_than is not None:
        stmt = stmt.where(Pipeline.id != other_than)
    if session.exec(stmt).first() is not None:
        raise Problem.conflict(
            f"a pipeline named {name!r} already exists in this workspace", field="name", value=name
        )


def _commit(session: Session, name: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Problem.conflict(
            f"a pipeline named {name!r} already exists in this workspace", field="name"
        ) from None


@router.get("", response_model=PipelinePage)
def list_pipelines(
    guard: Annotated[Guard, Authorize("pipeline:list")],
    session: SessionDep,
    tag: Annotated[
        str | None, Query(max_length=200, description="Only pipelines with this tag, `key` or `key=value`.")
    ] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> PipelinePage:
    """Pipelines of the caller's workspace, oldest first."""
    stmt = select(Pipeline).where(Pipeline.workspace_id == guard.workspace_id)
    if cursor is not None:
        key = decode_cursor(cursor, "pipelines", [datetime, uuid.UUID])
        stmt = stmt.where(after_key([col(Pipeline.created_at), col(Pipeline.id)], key))
    stmt = stmt.order_by(col(Pipeline.created_at), col(Pipeline.id))
    if tag is None:
        rows = list(session.exec(stmt.limit(limit + 1)).all())
    else:
        # Tags are JSON: filtered here, portable across SQLite and PostgreSQL.
        k, _, v = tag.partition("=")
        rows = []
        for r in session.exec(stmt):
            if k in r.tags and (not v or r.tags[k] == v):
                rows.append(r)
                if len(rows) > limit:
                    break
    more = len(rows) > limit
    rows = rows[:limit]
    cache: dict[uuid.UUID, Connection] = {}
    return PipelinePage(
        items=[to_public(session, r, cache) for r in rows],
        next_cursor=encode_cursor("pipelines", [rows[-1].created_at, rows[-1].id]) if more else None,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PipelinePublic)
def create_pipeline(
    guard: Annotated[Guard, Authorize("pipeline:create")],
    body: PipelineCreate,
    session: SessionDep,
    registry: RegistryDep,
) -> PipelinePublic:
    """Create a pipeline from connections of this workspace; the caller becomes its owner."""
    source = resolve_connection(
        session, guard.workspace_id, body.source.connection, field="source.connection"
    )
    destination = resolve_connection(
        session, guard.workspace_id, body.destination.connection, field="destination.connection"
    )
    spec = build_spec(
        registry,
        name=body.name,
        source=source,
        destination=destination,
        streams=body.streams,
        schema_drift=body.schema_drift,
        batch_size=body.batch_size,
        schedule=body.schedule,
        tags=body.tags,
    )
    _name_taken(session, guard.workspace_id, body.name)
    row = Pipeline(
        workspace_id=guard.workspace_id,
        name=body.name,
        spec=spec,
        source_connection_id=source.id,
        destination_connection_id=destination.id,
        owner_id=guard.principal.id,
        tags=body.tags,
        schedule=body.schedule,
    )
    session.add(row)
    guard.audit(session, resource_id=row.id, detail={"name": row.name, "streams": len(body.streams)})
    _commit(session, body.name)
    return to_public(session, row)


@router.get("/{pipeline_id}", response_model=PipelinePublic)
def get_pipeline(
    guard: Annotated[Guard, Authorize("pipeline:read")], pipeline_id: uuid.UUID, session: SessionDep
) -> PipelinePublic:
    return to_public(session, guard.target_as(Pipeline))


@router.patch("/{pipeline_id}", response_model=PipelinePublic)
def update_pipeline(
    guard: Annotated[Guard, Authorize("pipeline:update")],
    pipeline_id: uuid.UUID,
    body: PipelineUpdate,
    session: SessionDep,
    registry: RegistryDep,
) -> PipelinePublic:
    """Change some fields; the result is validated as a whole, like a create."""
    row = guard.target_as(Pipeline)
    given = body.model_fields_set
    current = to_public(session, row)
    name = body.name if body.name is not None else row.name
    source = (
        resolve_connection(session, guard.workspace_id, body.source.connection, field="source.connection")
        if body.source is not None
        else session.get(Connection, row.source_connection_id)
    )
    destination = (
        resolve_connection(
            session, guard.workspace_id, body.destination.connection, field="destination.connection"
        )
        if body.destination is not None
        else session.get(Connection, row.destination_connection_id)
    )
    assert source is not None and destination is not None
    schedule = body.schedule if "schedule" in given else row.schedule
    tags = body.tags if body.tags is not None else row.tags
    spec = build_spec(
        registry,
        name=name,
        source=source,
        destination=destination,
        streams=body.streams if body.streams is not None else current.streams,
        schema_drift=body.schema_drift or current.schema_drift,
        batch_size=body.batch_size or current.batch_size,
        schedule=schedule,
        tags=tags,
    )
    if name != row.name:
        _name_taken(session, guard.workspace_id, name, other_than=row.id)
    row.name = name
    row.spec = spec
    row.source_connection_id = source.id
    row.destination_connection_id = destination.id
    row.schedule = schedule
    row.tags = tags
    row.updated_at = utcnow()
    session.add(row)
    guard.audit(session, detail={"name": row.name, "changed": sorted(given)})
    _commit(session, name)
    return to_public(session, row)


@router.delete("/{pipeline_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_pipeline(
    guard: Annotated[Guard, Authorize("pipeline:delete")], pipeline_id: uuid.UUID, session: SessionDep
) -> Response:
    """Delete a pipeline and its stream state history (the audit log keeps the record)."""
    row = guard.target_as(Pipeline)
    guard.audit(session, detail={"name": row.name})
    session.delete(row)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
