"""An API key of a principal: a public prefix to find it and a salted hash of the secret.

The key itself (``of_<prefix>_<secret>``) is shown once, when it is made; see
:mod:`api.auth.apikeys`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from api.models.base import UTCDateTime, utcnow

__all__ = ["ApiKey"]


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    principal_id: uuid.UUID = Field(foreign_key="principal.id", ondelete="CASCADE", index=True)
    prefix: str = Field(max_length=32, unique=True)
    secret_hash: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
