"""``/connections``: CRUD of connector configs (secrets encrypted at rest), plus ``check`` and
``discover``, which hand the decrypted config to the connector and answer with its result or
its error message (redacted of the connection's secrets)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.auth.dependencies import Authorize, Guard
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
from api.deps import RegistryDep, SecretBoxDep, SessionDep
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
from api.pagination import CursorParam, LimitParam, after_key, decode_cursor, encode_cursor
from openfuse_connectors.config import ConnectorConfig
from openfuse_connectors.connector import Connector
from openfuse_connectors.errors import ConfigError, OpenFuseError, RetriableError
from openfuse_connectors.registry import Registry, plugin_boundary

__all__ = ["router"]

router = APIRouter(prefix="/connections", tags=["connections"])


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


@router.get("", response_model=ConnectionPage)
def list_connections(
    guard: Annotated[Guard, Authorize("connection:list")],
    session: SessionDep,
    registry: RegistryDep,
    connector: Annotated[str | None, Query(max_length=100, description="Only this connector.")] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> ConnectionPage:
    """Connections of the caller's workspace, oldest first."""
    stmt = select(Connection).where(Connection.workspace_id == guard.workspace_id)
    if connector is not None:
        stmt = stmt.where(Connection.connector == connector)
    if cursor is not None:
        key = decode_cursor(cursor, "connections", [datetime, uuid.UUID])
        stmt = stmt.where(after_key([col(Connection.created_at), col(Connection.id)], key))
    rows = session.exec(stmt.order_by(col(Connection.created_at), col(Connection.id)).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return ConnectionPage(
        items=[to_public(r, registry) for r in rows],
        next_cursor=encode_cursor("connections", [rows[-1].created_at, rows[-1].id]) if more else None,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ConnectionPublic)
def create_connection(
    guard: Annotated[Guard, Authorize("connection:create")],
    body: ConnectionCreate,
    session: SessionDep,
    registry: RegistryDep,
    box: SecretBoxDep,
) -> ConnectionPublic:
    """Create a connection. The config is validated by the connector; its secrets are encrypted."""
    conn = connector_for(registry, body.connector)
    cfg = validate_config(conn, body.config)
    _name_taken(session, guard.workspace_id, body.name)
    row = Connection(
        workspace_id=guard.workspace_id, name=body.name, connector=conn.name, created_by=guard.principal.id
    )
    row.config = seal(cfg, box, row.id)
    session.add(row)
    guard.audit(
        session,
        resource_id=row.id,
        detail={"name": row.name, "connector": row.connector, "fields": sorted(body.config)},
    )
    _commit(session, body.name)
    return to_public(row, registry)


@router.get("/{connection_id}", response_model=ConnectionPublic)
def get_connection(
    guard: Annotated[Guard, Authorize("connection:read")], connection_id: uuid.UUID, registry: RegistryDep
) -> ConnectionPublic:
    return to_public(guard.target_as(Connection), registry)


@router.patch("/{connection_id}", response_model=ConnectionPublic)
def update_connection(
    guard: Annotated[Guard, Authorize("connection:update")],
    connection_id: uuid.UUID,
    body: ConnectionUpdate,
    session: SessionDep,
    registry: RegistryDep,
    box: SecretBoxDep,
) -> ConnectionPublic:
    """Rename, or change config keys (merged; omitted keys, secrets included, keep their values)."""
    row = guard.target_as(Connection)
    changed: list[str] = []
    if body.name is not None and body.name != row.name:
        _name_taken(session, guard.workspace_id, body.name, other_than=row.id)
        row.name = body.name
        changed.append("name")
    if body.config is not None:
        conn = connector_for(registry, row.connector)
        merged = apply_patch(unseal(row.config, box, row.id), body.config)
        row.config = seal(validate_config(conn, merged), box, row.id)
        changed += [f"config.{k}" for k in sorted(body.config)]
    row.updated_at = utcnow()
    session.add(row)
    guard.audit(session, detail={"name": row.name, "changed": changed})
    _commit(session, row.name)
    return to_public(row, registry)


@router.delete("/{connection_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_connection(
    guard: Annotated[Guard, Authorize("connection:delete")], connection_id: uuid.UUID, session: SessionDep
) -> Response:
    """Delete a connection no pipeline uses (409 naming the pipelines otherwise)."""
    row = guard.target_as(Connection)
    users = session.exec(
        select(Pipeline.name).where(
            (Pipeline.source_connection_id == row.id) | (Pipeline.destination_connection_id == row.id)
        )
    ).all()
    if users:
        raise Problem.conflict(
            f"connection {row.name!r} is used by pipeline(s) {sorted(users)}; change or delete them first"
        )
    guard.audit(session, detail={"name": row.name, "connector": row.connector})
    session.delete(row)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _plaintext_config(
    row: Connection, registry: Registry, box: SecretBox
) -> tuple[Connector, ConnectorConfig]:
    conn = connector_for(registry, row.connector)
    return conn, validate_config(conn, unseal(row.config, box, row.id))


def _connector_problem(e: OpenFuseError, connector: str, secrets: list[str]) -> Problem:
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


@router.post("/{connection_id}/check", response_model=CheckResult)
def check_connection(
    guard: Annotated[Guard, Authorize("connection:check")],
    connection_id: uuid.UUID,
    session: SessionDep,
    registry: RegistryDep,
    box: SecretBoxDep,
    role: Annotated[
        Literal["source", "destination"] | None,
        Query(description="Side to check; default: source when the connector can be one."),
    ] = None,
) -> CheckResult:
    """Connect with the stored config and report success, or the connector's error as a problem."""
    row = guard.target_as(Connection)
    conn, cfg = _plaintext_config(row, registry, box)
    role = role or ("source" if conn.extractor else "destination")
    cls = conn.extractor if role == "source" else conn.loader
    if cls is None:
        raise Problem.invalid(
            "role", f"connector {conn.name!r} cannot be a {role} (it is: {', '.join(conn.kinds)})", value=role
        )
    session.commit()  # end the read transaction: the check may take a while
    start = time.perf_counter()
    try:
        with plugin_boundary(conn.name, "check"):
            obj = cls(cfg)
            try:
                obj.check()
            finally:
                obj.close()
    except OpenFuseError as e:
        raise _connector_problem(e, conn.name, secret_values(cfg)) from None
    seconds = round(time.perf_counter() - start, 3)
    guard.audit(session, detail={"name": row.name, "role": role})
    session.commit()
    return CheckResult(ok=True, connector=conn.name, role=role, seconds=seconds)


@router.post("/{connection_id}/discover", response_model=DiscoverResult)
def discover_connection(
    guard: Annotated[Guard, Authorize("connection:discover")],
    connection_id: uuid.UUID,
    session: SessionDep,
    registry: RegistryDep,
    box: SecretBoxDep,
) -> DiscoverResult:
    """The streams the source offers: columns with Arrow and native types, keys, cursor candidates."""
    row = guard.target_as(Connection)
    conn, cfg = _plaintext_config(row, registry, box)
    if conn.extractor is None:
        raise Problem.invalid(
            "connector",
            f"connector {conn.name!r} is not a source (it is: {', '.join(conn.kinds)})",
            value=conn.name,
        )
    session.commit()
    try:
        with plugin_boundary(conn.name, "discover"):
            extractor = conn.extractor(cfg)
            try:
                streams = extractor.discover()
            finally:
                extractor.close()
    except OpenFuseError as e:
        raise _connector_problem(e, conn.name, secret_values(cfg)) from None
    guard.audit(session, detail={"name": row.name, "streams": len(streams)})
    session.commit()
    return DiscoverResult(
        connector=conn.name, streams=[DiscoveredStream.model_validate(s.to_json()) for s in streams]
    )
