"""Connections: CRUD of connector configs (secrets encrypted at rest), plus ``check`` and
``discover``, which hand the decrypted config to the connector and answer with its result or
its error message (redacted of the connection's secrets).

A change to a connection rewrites the Dagster files of the pipelines that use it
(:mod:`api.pipeline_export`).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.connection_config import (
    apply_patch,
    connector_for,
    public_config,
    redact,
    seal,
    secret_values,
    unseal,
    validate_config,
)
from api.crypto import SecretBox
from api.errors import Problem
from api.models.base import utcnow
from api.models.connection import (
    CheckResult,
    Connection,
    ConnectionCreate,
    ConnectionPage,
    ConnectionPublic,
    ConnectionUpdate,
    DiscoveredStream,
    DiscoverResult,
)
from api.models.pipeline import Pipeline
from api.pagination import after_key, decode_cursor, encode_cursor
from api.services.base import Ctx, check_limit, operation
from openfuse_connectors.config import ConnectorConfig
from openfuse_connectors.connector import Connector
from openfuse_connectors.errors import ConfigError, OpenFuseError, RetriableError
from openfuse_connectors.registry import Registry, plugin_boundary

__all__ = [
    "check_connection",
    "connector_problem",
    "create_connection",
    "delete_connection",
    "discover_connection",
    "get_connection",
    "list_connections",
    "plaintext_config",
    "to_public",
    "update_connection",
]


def to_public(row: Connection, registry: Registry) -> ConnectionPublic:
    conn = registry.connectors.get(row.connector)
    return ConnectionPublic(
        id=row.id,
        name=row.name,
        connector=row.connector,
        config=public_config(row.config, conn.config_model if conn else None),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _name_taken(
    session: Session, workspace_id: uuid.UUID, name: str, *, other_than: uuid.UUID | None = None
) -> None:
    stmt = select(Connection.id).where(Connection.workspace_id == workspace_id, Connection.name == name)
    if other_than is not None:
        stmt = stmt.where(Connection.id != other_than)
    if session.exec(stmt).first() is not None:
        raise Problem.conflict(
            f"a connection named {name!r} already exists in this workspace", field="name", value=name
        )


def _commit(session: Session, name: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Problem.conflict(
            f"a connection named {name!r} already exists in this workspace", field="name"
        ) from None


@operation("connection:list")
def list_connections(
    ctx: Ctx, *, connector: str | None = None, cursor: str | None = None, limit: int = 50
) -> ConnectionPage:
    """Connections of the caller's workspace, oldest first."""
    check_limit(limit)
    stmt = select(Connection).where(Connection.workspace_id == ctx.workspace_id)
    if connector is not None:
        stmt = stmt.where(Connection.connector == connector)
    if cursor is not None:
        key = decode_cursor(cursor, "connections", [datetime, uuid.UUID])
        stmt = stmt.where(after_key([col(Connection.created_at), col(Connection.id)], key))
    rows = ctx.session.exec(
        stmt.order_by(col(Connection.created_at), col(Connection.id)).limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return ConnectionPage(
        items=[to_public(r, ctx.registry) for r in rows],
        next_cursor=encode_cursor("connections", [rows[-1].created_at, rows[-1].id]) if more else None,
    )


@operation("connection:create")
def create_connection(ctx: Ctx, body: ConnectionCreate) -> ConnectionPublic:
    """Create a connection. The config is validated by the connector; its secrets are encrypted."""
    conn = connector_for(ctx.registry, body.connector)
    cfg = validate_config(conn, body.config)
    _name_taken(ctx.session, ctx.workspace_id, body.name)
    row = Connection(
        workspace_id=ctx.workspace_id, name=body.name, connector=conn.name, created_by=ctx.principal.id
    )
    row.config = seal(cfg, ctx.box, row.id)
    ctx.session.add(row)
    ctx.guard.audit(
        ctx.session,
        resource_id=row.id,
        detail={"name": row.name, "connector": row.connector, "fields": sorted(body.config)},
    )
    _commit(ctx.session, body.name)
    return to_public(row, ctx.registry)


@operation("connection:read")
def get_connection(ctx: Ctx) -> ConnectionPublic:
    """One connection (secret settings shown as `{"set": true}`)."""
    return to_public(ctx.guard.target_as(Connection), ctx.registry)


@operation("connection:update")
def update_connection(ctx: Ctx, body: ConnectionUpdate) -> ConnectionPublic:
    """Rename, or change config keys (merged; omitted keys, secrets included, keep their values)."""
    row = ctx.guard.target_as(Connection)
    changed: list[str] = []
    if body.name is not None and body.name != row.name:
        _name_taken(ctx.session, ctx.workspace_id, body.name, other_than=row.id)
        row.name = body.name
        changed.append("name")
    if body.config is not None:
        conn = connector_for(ctx.registry, row.connector)
        merged = apply_patch(unseal(row.config, ctx.box, row.id), body.config)
        row.config = seal(validate_config(conn, merged), ctx.box, row.id)
        changed += [f"config.{k}" for k in sorted(body.config)]
    row.updated_at = utcnow()
    ctx.session.add(row)
    ctx.guard.audit(ctx.session, detail={"name": row.name, "changed": changed})
    _commit(ctx.session, row.name)
    if body.config is not None:
        users = ctx.session.exec(
            select(Pipeline).where(
                (Pipeline.source_connection_id == row.id) | (Pipeline.destination_connection_id == row.id)
            )
        ).all()
        ctx.exporter.export_after_commit(ctx.session, users)
    return to_public(row, ctx.registry)


@operation("connection:delete")
def delete_connection(ctx: Ctx) -> None:
    """Delete a connection no pipeline uses (409 naming the pipelines otherwise)."""
    row = ctx.guard.target_as(Connection)
    users = ctx.session.exec(
        select(Pipeline.name).where(
            (Pipeline.source_connection_id == row.id) | (Pipeline.destination_connection_id == row.id)
        )
    ).all()
    if users:
        raise Problem.conflict(
            f"connection {row.name!r} is used by pipeline(s) {sorted(users)}; change or delete them first"
        )
    ctx.guard.audit(ctx.session, detail={"name": row.name, "connector": row.connector})
    ctx.session.delete(row)
    ctx.session.commit()


def plaintext_config(
    row: Connection, registry: Registry, box: SecretBox
) -> tuple[Connector, ConnectorConfig]:
    conn = connector_for(registry, row.connector)
    return conn, validate_config(conn, unseal(row.config, box, row.id))


def connector_problem(e: OpenFuseError, connector: str, secrets: list[str]) -> Problem:
    message = redact(str(e), secrets)
    if isinstance(e, ConfigError):
        return Problem(
            422,
            "connector-config",
            message,
            title="The connector rejected its config",
            extra={"connector": connector},
        )
    if isinstance(e, RetriableError):
        return Problem(
            502,
            "connector-unreachable",
            message,
            title="The connector could not reach its server",
            extra={"connector": connector, "retriable": True},
        )
    return Problem(
        502, "connector-error", message, title="The connector failed", extra={"connector": connector}
    )


@operation("connection:check")
def check_connection(ctx: Ctx, *, role: str | None = None) -> CheckResult:
    """Connect with the stored config and report success, or the connector's error as a problem."""
    if role not in (None, "source", "destination"):
        raise Problem.invalid("role", "must be `source` or `destination`", value=role)
    row = ctx.guard.target_as(Connection)
    conn, cfg = plaintext_config(row, ctx.registry, ctx.box)
    role = role or ("source" if conn.extractor else "destination")
    cls = conn.extractor if role == "source" else conn.loader
    if cls is None:
        raise Problem.invalid(
            "role", f"connector {conn.name!r} cannot be a {role} (it is: {', '.join(conn.kinds)})", value=role
        )
    ctx.session.commit()  # end the read transaction: the check may take a while
    start = time.perf_counter()
    try:
        with plugin_boundary(conn.name, "check"):
            obj = cls(cfg)
            try:
                obj.check()
            finally:
                obj.close()
    except OpenFuseError as e:
        raise connector_problem(e, conn.name, secret_values(cfg)) from None
    seconds = round(time.perf_counter() - start, 3)
    ctx.guard.audit(ctx.session, detail={"name": row.name, "role": role})
    ctx.session.commit()
    return CheckResult(ok=True, connector=conn.name, role=role, seconds=seconds)


@operation("connection:discover")
def discover_connection(ctx: Ctx) -> DiscoverResult:
    """The streams the source offers: columns with Arrow and native types, keys, cursor candidates."""
    row = ctx.guard.target_as(Connection)
    conn, cfg = plaintext_config(row, ctx.registry, ctx.box)
    if conn.extractor is None:
        raise Problem.invalid(
            "connector",
            f"connector {conn.name!r} is not a source (it is: {', '.join(conn.kinds)})",
            value=conn.name,
        )
    ctx.session.commit()
    try:
        with plugin_boundary(conn.name, "discover"):
            extractor = conn.extractor(cfg)
            try:
                streams = extractor.discover()
            finally:
                extractor.close()
    except OpenFuseError as e:
        raise connector_problem(e, conn.name, secret_values(cfg)) from None
    ctx.guard.audit(ctx.session, detail={"name": row.name, "streams": len(streams)})
    ctx.session.commit()
    return DiscoverResult(
        connector=conn.name, streams=[DiscoveredStream.model_validate(s.to_json()) for s in streams]
    )
