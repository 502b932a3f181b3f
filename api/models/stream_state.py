"""Stream state history of a pipeline: every committed state, reset and rollback, in order.

The destination's own state table is what a run resumes from (it commits with the data); these
rows mirror it for display, and record resets and rollbacks as new entries - history is never
rewritten. The newest entry of a stream is its current state (``state`` null: start over).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from api.models.base import BigIntPK, JSONType, UTCDateTime, utcnow
from api.pagination import Page
from openfuse_connectors.state import StreamState

__all__ = [
    "CurrentStreamState",
    "StateCommit",
    "StateEntryKind",
    "StateReset",
    "StateRollback",
    "StreamStateEntry",
    "StreamStatePage",
    "StreamStatePublic",
]


class StateEntryKind(StrEnum):
    COMMIT = "commit"
    RESET = "reset"
    ROLLBACK = "rollback"


class StreamStateEntry(SQLModel, table=True):
    __tablename__ = "stream_state"
    __table_args__ = (Index("ix_stream_state_pipeline_stream", "pipeline_id", "stream", "id"),)

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    pipeline_id: uuid.UUID = Field(foreign_key="pipeline.id", ondelete="CASCADE")
    stream: str = Field(max_length=500)
    state: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    kind: str = Field(max_length=20)
    run_id: str | None = Field(default=None, max_length=100)
    rolled_back_to: int | None = Field(default=None, sa_type=BigIntPK)
    actor_id: uuid.UUID | None = Field(default=None)
    committed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class StreamStatePublic(BaseModel):
    id: int
    stream: str
    state: StreamState | None
    kind: StateEntryKind
    run_id: str | None
    rolled_back_to: int | None
    actor_id: uuid.UUID | None
    committed_at: datetime


class StreamStatePage(Page[StreamStatePublic]):
    pass


class CurrentStreamState(BaseModel):
    stream: str
    entry: StreamStatePublic | None = PydanticField(description="Newest history entry; null: never synced.")


class StateCommit(BaseModel):
    """A state the destination committed (posted by the orchestrator when it mirrors a run)."""

    model_config = ConfigDict(extra="forbid")

    stream: str = PydanticField(min_length=1, max_length=500)
    state: StreamState
    run_id: str | None = PydanticField(default=None, max_length=100)


class StateReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    streams: list[str] | None = PydanticField(
        default=None, description="Streams to reset; null resets every stream of the pipeline."
    )


class StateRollback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry_id: int = PydanticField(description="History entry whose state becomes current again.")
