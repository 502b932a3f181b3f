"""Writing audit entries. Callers add the entry to the session of the write it records, so the
two commit (or roll back) together; nothing ever updates or deletes an entry."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session

from api.models.audit_log import AuditLog, Outcome

__all__ = ["record"]


def record(
    session: Session,
    *,
    workspace_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    actor_name: str,
    action: str,
    resource_type: str,
    resource_id: object | None,
    outcome: Outcome,
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    """Add one entry to ``session`` (not committed). ``detail`` must hold no secret values:
    record which fields changed, not what they changed to."""
    entry = AuditLog(
        workspace_id=workspace_id,
        actor_id=actor_id,
        actor_name=actor_name[:200],
        action=action,
        resource_type=resource_type,
        resource_id=None if resource_id is None else str(resource_id),
        outcome=outcome.value,
        detail=detail or {},
    )
    session.add(entry)
    return entry
