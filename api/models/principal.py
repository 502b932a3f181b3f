"""A principal: who calls the API (a person or a service), with ABAC attributes.

``attributes`` is what policies read: ``{"team": "data", "roles": ["admin"], "region": "eu"}``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from api.models.base import JSONType, UTCDateTime, utcnow
from api.models.workspace import WorkspacePublic

__all__ = ["Principal", "PrincipalPublic"]


class Principal(SQLModel, table=True):
    __tablename__ = "principal"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspace.id", ondelete="CASCADE")
    name: str = Field(max_length=200)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class PrincipalPublic(BaseModel):
    """The calling principal, as ``GET /api/v1/me`` shows it."""

    id: uuid.UUID
    name: str
    workspace: WorkspacePublic
    attributes: dict[str, Any]
