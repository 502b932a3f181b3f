"""Idempotency keys of run launches: the same key and request give the same run.

A row is written (without ``run_id``) before the API asks Dagster to launch, and completed with
the run id after; a failed launch deletes it, so the client may retry with the same key. Keys
belong to the principal that sent them and are forgotten after :data:`KEY_TTL`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from api.models.base import BigIntPK, UTCDateTime, utcnow

__all__ = ["KEY_TTL", "IdempotencyKey"]

#: How long a key is remembered.
KEY_TTL = timedelta(hours=24)


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("principal_id", "key"),)

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    principal_id: uuid.UUID = Field(foreign_key="principal.id", ondelete="CASCADE")
    key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)
    pipeline_id: uuid.UUID = Field(foreign_key="pipeline.id", ondelete="CASCADE", index=True)
    run_id: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
