"""``/audit``: the workspace's audit log, newest first, filtered by actor, resource and time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.auth.dependencies import Authorize, Guard
from api.deps import SessionDep, StateDep
from api.models.audit_log import AuditLogPage, Outcome
from api.pagination import CursorParam, LimitParam
from api.responses import model_response
from api.services import audit as svc
from api.services.base import Ctx

__all__ = ["router"]

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=AuditLogPage)
def list_audit(
    guard: Annotated[Guard, Authorize(svc.list_audit)],
    state: StateDep,
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
) -> Response:
    """Audit entries of the caller's workspace, newest first."""
    return model_response(
        svc.list_audit(
            Ctx(state, session, guard),
            actor=actor,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            outcome=outcome,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )
    )


class NdjsonResponse(Response):
    media_type = "application/x-ndjson"


@router.get(
    "/export",
    response_class=NdjsonResponse,
    responses={
        200: {
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            "description": "One JSON entry per line (the fields of `GET /audit`'s items), oldest first.",
        }
    },
)
def export_audit(
    guard: Annotated[Guard, Authorize(svc.export_audit)],
    state: StateDep,
    session: SessionDep,
    since: Annotated[datetime | None, Query(description="Entries at or after this time (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Entries before this time (ISO 8601).")] = None,
) -> Response:
    """The workspace's audit log as JSON Lines, oldest first. An enterprise feature: the built-in
    policy `community.license.audit-export` forbids it unless the license grants `audit_export`.
    `X-OpenFuse-Truncated: true` when more than 100,000 entries matched."""
    out = svc.export_audit(Ctx(state, session, guard), since=since, until=until)
    return NdjsonResponse(
        out.ndjson,
        headers={"X-OpenFuse-Entries": str(out.entries), "X-OpenFuse-Truncated": str(out.truncated).lower()},
    )
