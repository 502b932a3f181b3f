"""The workspace's audit log, newest first, filtered by actor, resource and time."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field
from sqlmodel import col, select

from api.models.audit_log import AuditLog, AuditLogPage, AuditLogPublic, Outcome
from api.pagination import decode_cursor, encode_cursor
from api.services.base import Ctx, check_limit, operation

__all__ = ["AuditExport", "export_audit", "list_audit"]


@operation("audit:list")
def list_audit(
    ctx: Ctx,
    *,
    actor: str | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    outcome: Outcome | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> AuditLogPage:
    """Audit entries of the caller's workspace, newest first."""
    check_limit(limit)
    stmt = select(AuditLog).where(AuditLog.workspace_id == ctx.workspace_id)
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
    rows = ctx.session.exec(stmt.order_by(col(AuditLog.id).desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditLogPage(
        items=[AuditLogPublic.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=encode_cursor("audit", [rows[-1].id]) if more else None,
    )


#: Largest export in one request; narrow ``since``/``until`` for more.
EXPORT_LIMIT = 100_000


class AuditExport(BaseModel):
    """The audit log as JSON Lines, oldest first (for a SIEM or an archive)."""

    entries: int
    truncated: bool = Field(
        description=f"True when more than {EXPORT_LIMIT:,} entries matched; narrow the window."
    )
    ndjson: str = Field(description="One JSON object per line: the fields of `GET /audit`'s items.")


@operation("audit:export")
def export_audit(ctx: Ctx, *, since: datetime | None = None, until: datetime | None = None) -> AuditExport:
    """The workspace's audit log as JSON Lines, oldest first (license feature `audit_export`)."""
    stmt = select(AuditLog).where(AuditLog.workspace_id == ctx.workspace_id)
    if since is not None:
        stmt = stmt.where(col(AuditLog.at) >= since)
    if until is not None:
        stmt = stmt.where(col(AuditLog.at) < until)
    rows = ctx.session.exec(stmt.order_by(col(AuditLog.id)).limit(EXPORT_LIMIT + 1)).all()
    truncated = len(rows) > EXPORT_LIMIT
    rows = rows[:EXPORT_LIMIT]
    lines = [AuditLogPublic.model_validate(r, from_attributes=True).model_dump_json() for r in rows]
    ctx.guard.audit(ctx.session, detail={"entries": len(lines), "truncated": truncated})
    ctx.session.commit()
    return AuditExport(entries=len(lines), truncated=truncated, ndjson="".join(x + "\n" for x in lines))
