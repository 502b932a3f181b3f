"""``/audit``: the workspace's audit log, newest first, filtered by actor, resource and time."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import col, select

from api.auth.dependencies import Authorize, Guard
from api.deps import SessionDep
from api.models.audit_log import AuditLog, AuditLogPage, AuditLogPublic, Outcome
from api.pagination import CursorParam, LimitParam, decode_cursor, encode_cursor

__all__ = ["router"]

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=AuditLogPage)
def list_audit(
    guard: Annotated[Guard, Authorize("audit:list")],
    session: SessionDep,
    actor: Annotated[str | None, Query(max_length=200, description="Actor id or name.")] = None,
    action: Annotated[str | None, Query(max_length=100, description="e.g. `connection:create`.")] = None,
    resource_type: Annotated[str | None, Query(max_length=50)] = None,
    resource_id: Annotated[str | None, Query(max_length=100)] = None,
    outcome: Outcome | None = None,
    since: Annotated[datetime | None, Query(description="Entries at or after this time (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Entries before this time (ISO 8601).")] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> AuditLogPage:
    """Audit entries of the caller's workspace, newest first."""
    stmt = select(AuditLog).where(AuditLog.workspace_id == guard.workspace_id)
    if actor is not None:
        try:
            stmt = stmt.where(AuditLog.actor_id == uuid.UUID(actor))
        except ValueError:
            stmt = stmt.where(AuditLog.actor_name == actor)
    if action is not None:
        stmt = stmt.where(AuditLog.action == action)
    if resource_type is not None:
        stmt = stmt.where(AuditLog.resource_type == resource_type)
    if resource_id is not None:
        stmt = stmt.where(AuditLog.resource_id == resource_id)
    if outcome is not None:
        stmt = stmt.where(AuditLog.outcome == outcome.value)
    if since is not None:
        stmt = stmt.where(col(AuditLog.at) >= since)
    if until is not None:
        stmt = stmt.where(col(AuditLog.at) < until)
    if cursor is not None:
        (last,) = decode_cursor(cursor, "audit", [int])
        stmt = stmt.where(col(AuditLog.id) < last)
    rows = session.exec(stmt.order_by(col(AuditLog.id).desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditLogPage(
        items=[AuditLogPublic.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=encode_cursor("audit", [rows[-1].id]) if more else None,
    )
