"""Pipelines: CRUD, validated against the connector catalog; writes audited.

After each committed change the pipeline's Dagster file is rewritten (or removed) and a reload
of the code location is scheduled (:mod:`api.pipeline_export`).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from api.connection_config import secret_values
from api.errors import Problem
from api.models.base import utcnow
from api.models.connection import Connection
from api.models.pipeline import (
    Pipeline,
    PipelineCreate,
    PipelinePage,
    PipelinePublic,
    PipelineStatus,
    PipelineUpdate,
)
from api.pagination import after_key, decode_cursor, encode_cursor
from api.pipeline_config import build_spec, resolve_connection
from api.pipeline_export import job_name
from api.services.base import Ctx, check_limit, operation
from api.services.connections import connector_problem, plaintext_config
from openfuse_connectors.errors import OpenFuseError
from openfuse_connectors.registry import plugin_boundary
from openfuse_connectors.spec import SchemaDrift

__all__ = [
    "create_pipeline",
    "delete_pipeline",
    "get_pipeline",
    "list_pipelines",
    "pipeline_status",
    "to_public",
    "update_pipeline",
]


def _public_doc(row: Pipeline, source: tuple[str, str], destination: tuple[str, str]) -> dict[str, Any]:
    """The public view of a pipeline as plain data (``source``/``destination``: connection name and
    connector); validated, once and in pydantic's core, by the caller."""
    return {
        "id": row.id,
        "name": row.name,
        "source": {
            "connection_id": row.source_connection_id,
            "connection_name": source[0],
            "connector": source[1],
        },
        "destination": {
            "connection_id": row.destination_connection_id,
            "connection_name": destination[0],
            "connector": destination[1],
        },
        "streams": row.spec.get("streams", []),
        "schema_drift": row.spec.get("schema_drift", SchemaDrift.EVOLVE.value),
        "schedule": row.schedule,
        "tags": row.tags,
        "batch_size": int(row.spec.get("batch_size", 100_000)),
        "cdc": row.spec.get("cdc"),
        "owner_id": row.owner_id,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def to_public(session: Session, row: Pipeline) -> PipelinePublic:
    source = session.get(Connection, row.source_connection_id)
    destination = session.get(Connection, row.destination_connection_id)
    assert source is not None and destination is not None  # foreign keys guarantee them
    return PipelinePublic.model_validate(
        _public_doc(row, (source.name, source.connector), (destination.name, destination.connector))
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


class _PublicCache:
    """Validated public views of pipelines, by version: (id, updated_at, owner, and the names and
    connectors of both connections). Every change of a pipeline moves its ``updated_at``, so a
    page of unchanged pipelines is answered without decoding and validating their specs again;
    an entry of an old version is never looked up again and ages out. Per process."""

    def __init__(self, size: int = 20_000):
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], PipelinePublic] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> PipelinePublic | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], value: PipelinePublic) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_CACHE = _PublicCache()
# Made once: building aliases (and their column proxies) per request costs more than the query.
_SRC = aliased(Connection, name="source_connection")
_DST = aliased(Connection, name="destination_connection")


@operation("pipeline:list")
def list_pipelines(
    ctx: Ctx, *, tag: str | None = None, cursor: str | None = None, limit: int = 50
) -> PipelinePage:
    """Pipelines of the caller's workspace, oldest first."""
    check_limit(limit)
    session = ctx.session
    # The page's keys and versions, with both connections, in one query; specs only for the
    # pipelines not in the cache (see _PublicCache).
    src, dst = _SRC, _DST
    columns = [
        col(Pipeline.id),
        col(Pipeline.created_at),
        col(Pipeline.updated_at),
        col(Pipeline.owner_id),
        col(src.name),
        col(src.connector),
        col(dst.name),
        col(dst.connector),
    ]
    stmt = (
        select(*columns, *([col(Pipeline.tags)] if tag is not None else []))
        .join(src, col(src.id) == col(Pipeline.source_connection_id))
        .join(dst, col(dst.id) == col(Pipeline.destination_connection_id))
        .where(Pipeline.workspace_id == ctx.workspace_id)
    )
    if cursor is not None:
        key = decode_cursor(cursor, "pipelines", [datetime, uuid.UUID])
        stmt = stmt.where(after_key([col(Pipeline.created_at), col(Pipeline.id)], key))
    stmt = stmt.order_by(col(Pipeline.created_at), col(Pipeline.id))
    rows: list[Any]
    if tag is None:
        rows = list(session.exec(stmt.limit(limit + 1)).all())
    else:
        # Tags are JSON: filtered here, portable across SQLite and PostgreSQL.
        tag_key, _, tag_value = tag.partition("=")
        rows = []
        for r in session.exec(stmt):
            tags: dict[str, str] = r[-1]  # type: ignore[index]
            if tag_key in tags and (not tag_value or tags[tag_key] == tag_value):
                rows.append(r)
                if len(rows) > limit:
                    break
    more = len(rows) > limit
    rows = rows[:limit]
    keys = [tuple(r[:8]) for r in rows]
    views = {k: v for k in keys if (v := _CACHE.get(k)) is not None}
    missing = [k[0] for k in keys if k not in views]
    if missing:
        full = {p.id: p for p in session.exec(select(Pipeline).where(col(Pipeline.id).in_(missing))).all()}
        for k in keys:
            if k not in views:
                view = PipelinePublic.model_validate(_public_doc(full[k[0]], (k[4], k[5]), (k[6], k[7])))
                views[k] = view
                _CACHE.put(k, view)
    last = rows[-1] if rows else None
    return PipelinePage(
        items=[views[k] for k in keys],
        next_cursor=encode_cursor("pipelines", [last[1], last[0]]) if more and last is not None else None,
    )


@operation("pipeline:create")
def create_pipeline(ctx: Ctx, body: PipelineCreate) -> PipelinePublic:
    """Create a pipeline from connections of this workspace; the caller becomes its owner."""
    session = ctx.session
    source = resolve_connection(session, ctx.workspace_id, body.source.connection, field="source.connection")
    destination = resolve_connection(
        session, ctx.workspace_id, body.destination.connection, field="destination.connection"
    )
    spec = build_spec(
        ctx.registry,
        name=body.name,
        source=source,
        destination=destination,
        streams=body.streams,
        schema_drift=body.schema_drift,
        batch_size=body.batch_size,
        schedule=body.schedule,
        tags=body.tags,
        cdc=body.cdc,
    )
    _name_taken(session, ctx.workspace_id, body.name)
    row = Pipeline(
        workspace_id=ctx.workspace_id,
        name=body.name,
        spec=spec,
        source_connection_id=source.id,
        destination_connection_id=destination.id,
        owner_id=ctx.principal.id,
        tags=body.tags,
        schedule=body.schedule,
    )
    session.add(row)
    ctx.guard.audit(session, resource_id=row.id, detail={"name": row.name, "streams": len(body.streams)})
    _commit(session, body.name)
    ctx.exporter.export_after_commit(session, [row])
    return to_public(session, row)


@operation("pipeline:read")
def get_pipeline(ctx: Ctx) -> PipelinePublic:
    """One pipeline."""
    return to_public(ctx.session, ctx.guard.target_as(Pipeline))


@operation("pipeline:read")
def pipeline_status(ctx: Ctx) -> PipelineStatus:
    """What the pipeline holds on its source now: for a CDC pipeline, its replication slot's lag
    and retained WAL against the thresholds (asked of the source, live)."""
    from openfuse_connectors.cdc.config import CdcSettings
    from openfuse_connectors.cdc.slot import slot_health
    from openfuse_connectors.spec import SyncMode

    row = ctx.guard.target_as(Pipeline)
    public = to_public(ctx.session, row)
    if not any(s.mode is SyncMode.CDC for s in public.streams):
        return PipelineStatus(pipeline_id=row.id, mode="batch")
    source = ctx.session.get(Connection, row.source_connection_id)
    assert source is not None
    conn, cfg = plaintext_config(source, ctx.registry, ctx.box)
    ctx.session.commit()  # end the read transaction: the source may take a while
    options = public.cdc.model_dump(exclude_defaults=True) if public.cdc is not None else {}
    settings_fields = {k: v for k, v in options.items() if k in CdcSettings.model_fields}
    try:
        with plugin_boundary(conn.name, "slot status"):
            settings = CdcSettings(
                pipeline=job_name(row),
                source=cfg,
                tables=tuple(s.name for s in public.streams),
                **settings_fields,
            )
            health = slot_health(settings)
    except OpenFuseError as e:
        raise connector_problem(e, conn.name, secret_values(cfg)) from None
    return PipelineStatus(pipeline_id=row.id, mode="cdc", slot=health.to_dict())


@operation("pipeline:update")
def update_pipeline(ctx: Ctx, body: PipelineUpdate) -> PipelinePublic:
    """Change some fields; the result is validated as a whole, like a create."""
    session = ctx.session
    row = ctx.guard.target_as(Pipeline)
    old_job = job_name(row)
    given = body.model_fields_set
    current = to_public(session, row)
    name = body.name if body.name is not None else row.name
    source = (
        resolve_connection(session, ctx.workspace_id, body.source.connection, field="source.connection")
        if body.source is not None
        else session.get(Connection, row.source_connection_id)
    )
    destination = (
        resolve_connection(
            session, ctx.workspace_id, body.destination.connection, field="destination.connection"
        )
        if body.destination is not None
        else session.get(Connection, row.destination_connection_id)
    )
    assert source is not None and destination is not None
    schedule = body.schedule if "schedule" in given else row.schedule
    tags = body.tags if body.tags is not None else row.tags
    spec = build_spec(
        ctx.registry,
        name=name,
        source=source,
        destination=destination,
        streams=body.streams if body.streams is not None else current.streams,
        schema_drift=body.schema_drift or current.schema_drift,
        batch_size=body.batch_size or current.batch_size,
        schedule=schedule,
        tags=tags,
        cdc=body.cdc if "cdc" in given else current.cdc,
    )
    if name != row.name:
        _name_taken(session, ctx.workspace_id, name, other_than=row.id)
    row.name = name
    row.spec = spec
    row.source_connection_id = source.id
    row.destination_connection_id = destination.id
    row.schedule = schedule
    row.tags = tags
    row.updated_at = utcnow()
    session.add(row)
    ctx.guard.audit(session, detail={"name": row.name, "changed": sorted(given)})
    _commit(session, name)
    new_job = job_name(row)
    ctx.exporter.export_after_commit(session, [row], removed_jobs=[old_job] if old_job != new_job else [])
    return to_public(session, row)


@operation("pipeline:delete")
def delete_pipeline(ctx: Ctx) -> None:
    """Delete a pipeline and its stream state history (the audit log keeps the record)."""
    row = ctx.guard.target_as(Pipeline)
    job = job_name(row)
    ctx.guard.audit(ctx.session, detail={"name": row.name})
    ctx.session.delete(row)
    ctx.session.commit()
    ctx.exporter.export_after_commit(ctx.session, [], removed_jobs=[job])
