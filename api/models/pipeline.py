"""A pipeline: the shared :class:`~openfuse_connectors.spec.PipelineSpec`, with its source and
destination given as connections of the workspace instead of inline configs.

``spec`` holds the PipelineSpec-shaped document (``streams``, ``schema_drift``, ``batch_size``,
``source``/``destination`` as ``{"connection": "<id>"}``); the two connection ids are also
foreign keys, so a connection in use cannot be deleted. ``name``, ``tags``, ``schedule`` and
the owner are columns because lists filter and policies decide on them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.models.base import JSONType, UTCDateTime, utcnow
from api.pagination import Page
from openfuse_connectors.cdc.options import CdcOptions
from openfuse_connectors.spec import SchemaDrift, StreamSpec

__all__ = [
    "ConnectionRef",
    "Pipeline",
    "PipelineCreate",
    "PipelineEndpoint",
    "PipelinePage",
    "PipelinePublic",
    "PipelineStatus",
    "PipelineUpdate",
]

PIPELINE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Pipeline(SQLModel, table=True):
    __tablename__ = "pipeline"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        Index("ix_pipeline_workspace_page", "workspace_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspace.id", ondelete="CASCADE")
    name: str = Field(max_length=200)
    spec: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    source_connection_id: uuid.UUID = Field(foreign_key="connection.id", ondelete="RESTRICT", index=True)
    destination_connection_id: uuid.UUID = Field(foreign_key="connection.id", ondelete="RESTRICT", index=True)
    owner_id: uuid.UUID | None = Field(default=None, foreign_key="principal.id", ondelete="SET NULL")
    tags: dict[str, str] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    schedule: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)

    def authz_attributes(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "owner_id": str(self.owner_id or ""),
            "tags": dict(self.tags),
            "source_connection_id": str(self.source_connection_id),
            "destination_connection_id": str(self.destination_connection_id),
        }


class ConnectionRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: str = PydanticField(
        min_length=1, max_length=200, description="Name or id of a connection in this workspace."
    )


class PipelineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = PydanticField(
        max_length=200, pattern=PIPELINE_NAME, description="Letters, digits, underscores."
    )
    source: ConnectionRef
    destination: ConnectionRef
    streams: list[StreamSpec] = PydanticField(min_length=1)
    schema_drift: SchemaDrift = SchemaDrift.EVOLVE
    schedule: str | None = PydanticField(default=None, max_length=100, description="Cron, e.g. `0 * * * *`.")
    tags: dict[str, str] = PydanticField(default_factory=dict)
    batch_size: int = PydanticField(default=100_000, ge=1, le=10_000_000)
    cdc: CdcOptions | None = PydanticField(
        default=None, description="Change data capture settings, for pipelines whose streams are `mode: cdc`."
    )


class PipelineUpdate(BaseModel):
    """A partial update: the fields given replace the stored ones."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = PydanticField(default=None, max_length=200, pattern=PIPELINE_NAME)
    source: ConnectionRef | None = None
    destination: ConnectionRef | None = None
    streams: list[StreamSpec] | None = PydanticField(default=None, min_length=1)
    schema_drift: SchemaDrift | None = None
    schedule: str | None = PydanticField(default=None, max_length=100)
    tags: dict[str, str] | None = None
    batch_size: int | None = PydanticField(default=None, ge=1, le=10_000_000)
    cdc: CdcOptions | None = None


class PipelineEndpoint(BaseModel):
    connection_id: uuid.UUID
    connection_name: str
    connector: str


class PipelinePublic(BaseModel):
    id: uuid.UUID
    name: str
    source: PipelineEndpoint
    destination: PipelineEndpoint
    streams: list[StreamSpec]
    schema_drift: SchemaDrift
    schedule: str | None
    tags: dict[str, str]
    batch_size: int
    cdc: CdcOptions | None = None
    owner_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class PipelinePage(Page[PipelinePublic]):
    pass


class PipelineStatus(BaseModel):
    """What a pipeline needs from its source now: for a CDC pipeline, its replication slot."""

    pipeline_id: uuid.UUID
    mode: str = PydanticField(description="`batch`, or `cdc` when its streams are change data capture.")
    slot: dict[str, Any] | None = PydanticField(
        default=None,
        description="CDC only: `exists`, `active`, `lag_bytes` (WAL written since the confirmed position), "
        "`retained_wal_bytes` (WAL the server keeps for the slot), `wal_status`, LSNs, the thresholds, "
        "`ok` and a `message`.",
    )
