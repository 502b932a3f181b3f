"""The audit log: one row per write (and per denied or failed write attempt). Append-only.

The application only ever inserts; in PostgreSQL (and SQLite) a trigger from the migration
refuses UPDATE and DELETE, so not even a bug or a stolen app credential can rewrite history.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from api.models.base import BigIntPK, JSONType, UTCDateTime, utcnow
from api.pagination import Page

__all__ = ["AuditLog", "AuditLogPage", "AuditLogPublic", "Outcome"]


class Outcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILURE = "failure"


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_workspace_id_id", "workspace_id", "id"),
        Index("ix_audit_log_resource", "resource_type", "resource_id"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    workspace_id: uuid.UUID | None = Field(default=None)
    actor_id: uuid.UUID | None = Field(default=None, index=True)
    actor_name: str = Field(max_length=200)
    action: str = Field(max_length=100)
    resource_type: str = Field(max_length=50)
    resource_id: str | None = Field(default=None, max_length=100)
    outcome: str = Field(max_length=20)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)


class AuditLogPublic(BaseModel):
    id: int
    at: datetime
    actor_id: uuid.UUID | None
    actor_name: str
    action: str
    resource_type: str
    resource_id: str | None
    outcome: Outcome
    detail: dict[str, Any]


class AuditLogPage(Page[AuditLogPublic]):
    pass
