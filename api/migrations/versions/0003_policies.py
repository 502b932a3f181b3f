"""Versioned custom policies per workspace; principals without roles become admins.

Before this revision every principal could do everything in its workspace; the Cedar policies
that replace that rule grant by role, so principals without a ``roles`` attribute get
``roles: [admin]`` (what they could do before). Downgrade drops the policies (the roles stay:
they are harmless to the old rule).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "policy_version",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("policy_ids", JSON, nullable=False),
        sa.Column("comment", sa.String(500), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name="fk_policy_version_workspace_id_workspace",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_policy_version"),
        sa.UniqueConstraint("workspace_id", "version", name="uq_policy_version_workspace_id_version"),
    )
    op.create_index("ix_policy_version_workspace_id", "policy_version", ["workspace_id"])

    conn = op.get_bind()
    principal = sa.table("principal", sa.column("id", sa.Uuid()), sa.column("attributes", JSON))
    for pid, attrs in conn.execute(sa.select(principal.c.id, principal.c.attributes)).all():
        attrs = attrs if isinstance(attrs, dict) else json.loads(attrs or "{}")
        if "roles" not in attrs:
            conn.execute(
                principal.update()
                .where(principal.c.id == pid)
                .values(attributes={**attrs, "roles": ["admin"]})
            )


def downgrade() -> None:
    op.drop_table("policy_version")
