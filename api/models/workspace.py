"""A workspace: the tenant boundary. Every other resource belongs to exactly one."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from api.models.base import UTCDateTime, utcnow

__all__ = ["Workspace", "WorkspacePublic"]


class Workspace(SQLModel, table=True):
    __tablename__ = "workspace"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class WorkspacePublic(BaseModel):
    id: uuid.UUID
    name: str
