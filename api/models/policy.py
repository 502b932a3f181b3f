"""A workspace's custom Cedar policies, versioned: every change is a new row, never an update.

The newest version of a workspace is in force (beside the built-in community policies, which no
custom policy can lift). An empty ``text`` is a valid version: "no custom policies".
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.errors import PolicyDiagnostic
from api.models.base import BigIntPK, JSONType, UTCDateTime, utcnow

__all__ = [
    "FeaturesPublic",
    "LicensePublic",
    "PolicyDiagnostic",
    "PolicyExplainRequest",
    "PolicyExplanation",
    "PolicyUpdate",
    "PolicyVersion",
    "PolicyVersionPage",
    "PolicyVersionPublic",
]


class PolicyVersion(SQLModel, table=True):
    __tablename__ = "policy_version"
    __table_args__ = (UniqueConstraint("workspace_id", "version"),)

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspace.id", ondelete="CASCADE", index=True)
    version: int
    text: str = Field(sa_type=Text)
    policy_ids: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    comment: str = Field(default="", max_length=500)
    created_by: uuid.UUID | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class PolicyUpdate(BaseModel):
    """A new version of the workspace's custom policies (replaces the whole set)."""

    model_config = ConfigDict(extra="forbid")

    text: str = PydanticField(
        max_length=1_000_000,
        description="Cedar policies. Validated against the OpenFuse schema; refused with Cedar's "
        "diagnostics (line, policy id, message). Empty text removes every custom policy.",
    )
    comment: str = PydanticField(default="", max_length=500, description="Why; kept with the version.")


class PolicyVersionPublic(BaseModel):
    version: int = PydanticField(description="0: no custom policy was ever stored.")
    text: str
    policy_ids: list[str]
    comment: str
    created_by: uuid.UUID | None
    created_at: datetime | None
    active: bool = PydanticField(
        description="Whether the custom policies are in force. Without the `abac` license feature only "
        "their forbids are (a lapsed license never widens access)."
    )
    builtin_policy_ids: list[str] = PydanticField(description="The community policies, always in force.")


class PolicyExplainRequest(BaseModel):
    """Ask why a request would be allowed or denied, under the workspace's policies in force."""

    model_config = ConfigDict(extra="forbid")

    principal: dict[str, Any] = PydanticField(
        description="`{id, team, roles, region, clearance}`: a principal of this workspace "
        "(attributes not given are empty)."
    )
    action: str = PydanticField(description="A Cedar action, e.g. `dataset:read`.")
    resource: dict[str, Any] = PydanticField(
        description="`{type, id, ...attributes}` of a resource in this workspace, e.g. "
        '`{"type": "Dataset", "id": "orders", "column_tags": ["pii"]}`.'
    )


class LicensePublic(BaseModel):
    """The installed license (never the token itself)."""

    edition: str = PydanticField(description="`community` or `enterprise`.")
    features: list[str]
    customer: str | None = None
    seats: int | None = None
    expires: str | None = None
    not_before: str | None = None
    issued_at: str | None = None
    issuer: str | None = None
    kid: str | None = None
    license_id: str | None = None
    in_grace: bool = PydanticField(
        description="Expired but within the grace period: still applies; renew now."
    )
    reason: str | None = PydanticField(
        default=None, description="Why this is the community edition, if it is."
    )
    reason_code: str | None = None
    warnings: list[str] = PydanticField(default_factory=list)


class FeaturesPublic(BaseModel):
    """Feature flags, for the dashboard's enterprise routes and for clients."""

    edition: str
    features: dict[str, bool] = PydanticField(
        description="Every known feature, and whether the license grants it."
    )
    descriptions: dict[str, str] = PydanticField(description="What each known feature enables.")


class PolicyVersionPage(BaseModel):
    items: list[PolicyVersionPublic]
    next_cursor: str | None = None


class PolicyExplanation(BaseModel):
    """Why a request would be allowed or denied."""

    allowed: bool
    reason: str = PydanticField(description="`permit`, `forbid` or `default-deny`.")
    determining: list[str] = PydanticField(description="Ids of the policies that decided.")
    obligations: list[str]
    errors: list[str]
    considered: list[str] = PydanticField(
        description="The policies evaluated (the slice for this action/scope)."
    )
    total: int
    decision_id: str
    text: str = PydanticField(description="The explanation for people, with the determining policies' text.")
