"""A connection: a named, reusable connector config of a workspace, secrets encrypted at rest.

In ``config`` the values of the connector's ``SecretStr`` fields are stored as
``{"$encrypted": "v1.<key id>.<ciphertext>"}`` (see :mod:`api.connection_config`); responses
show them as ``{"set": true}`` (or ``{"set": false}`` when unset), never the value.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic import Field as PydanticField
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.models.base import JSONType, UTCDateTime, utcnow
from api.pagination import Page

__all__ = [
    "CheckResult",
    "Connection",
    "ConnectionCreate",
    "ConnectionPage",
    "ConnectionPublic",
    "ConnectionUpdate",
    "DiscoverResult",
    "DiscoveredColumn",
    "DiscoveredStream",
]

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Connection(SQLModel, table=True):
    __tablename__ = "connection"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        Index("ix_connection_workspace_page", "workspace_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspace.id", ondelete="CASCADE")
    name: str = Field(max_length=200)
    connector: str = Field(max_length=100)
    config: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    created_by: uuid.UUID | None = Field(default=None, foreign_key="principal.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)

    def authz_attributes(self) -> dict[str, Any]:
        """What a policy may look at (never the config)."""
        return {"name": self.name, "connector": self.connector, "created_by": str(self.created_by or "")}


class ConnectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = PydanticField(description="Unique in the workspace; any text.")
    connector: str = PydanticField(min_length=1, max_length=100, description="A name from `GET /connectors`.")
    config: dict[str, Any] = PydanticField(
        default_factory=dict, description="The connector's config; see its `config_schema`."
    )


class ConnectionUpdate(BaseModel):
    """A partial update. ``config`` is merged key by key (RFC 7386 style, top level): a key set
    to null is removed, an omitted key keeps its value - so secrets need not be sent again."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    config: dict[str, Any] | None = None


class ConnectionPublic(BaseModel):
    id: uuid.UUID
    name: str
    connector: str
    config: dict[str, Any] = PydanticField(description='Secret fields appear as `{"set": true|false}`.')
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class ConnectionPage(Page[ConnectionPublic]):
    pass


class CheckResult(BaseModel):
    ok: bool
    connector: str
    role: str = PydanticField(
        description="`source` or `destination`: which side of the connector was checked."
    )
    seconds: float


class DiscoveredColumn(BaseModel):
    name: str
    type: str = PydanticField(description="Arrow type.")
    nullable: bool
    native_type: str | None


class DiscoveredStream(BaseModel):
    name: str
    columns: list[DiscoveredColumn]
    primary_key: list[str]
    cursor_candidates: list[str]


class DiscoverResult(BaseModel):
    connector: str
    streams: list[DiscoveredStream]
