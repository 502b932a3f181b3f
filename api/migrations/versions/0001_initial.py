"""Initial metadata schema: workspaces, principals, API keys, connections, pipelines, stream
state history and the append-only audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types spelled out here, not imported from api.models: a migration must keep meaning what it
# meant when it was written, whatever the models become.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.Uuid(), nullable=False)


# The audit log refuses UPDATE, DELETE (and TRUNCATE) at the database, not only in the app.
PG_AUDIT_GUARD = """
CREATE FUNCTION openfuse_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION openfuse_audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION openfuse_audit_log_append_only();
"""
SQLITE_AUDIT_GUARD = [
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END""",
]


def upgrade() -> None:
    op.create_table(
        "workspace",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workspace"),
        sa.UniqueConstraint("name", name="uq_workspace_name"),
    )
    op.create_table(
        "principal",
        _id(),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("attributes", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name="fk_principal_workspace_id_workspace", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_principal"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_principal_workspace_id_name"),
    )
    op.create_table(
        "api_key",
        _id(),
        sa.Column("principal_id", sa.Uuid(), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principal.id"], name="fk_api_key_principal_id_principal", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_key"),
        sa.UniqueConstraint("prefix", name="uq_api_key_prefix"),
    )
    op.create_index("ix_api_key_principal_id", "api_key", ["principal_id"])
    op.create_table(
        "connection",
        _id(),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("connector", sa.String(100), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["principal.id"], name="fk_connection_created_by_principal", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name="fk_connection_workspace_id_workspace",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_connection"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_connection_workspace_id_name"),
    )
    op.create_index("ix_connection_workspace_page", "connection", ["workspace_id", "created_at", "id"])
    op.create_table(
        "pipeline",
        _id(),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("source_connection_id", sa.Uuid(), nullable=False),
        sa.Column("destination_connection_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("schedule", sa.String(100), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["destination_connection_id"],
            ["connection.id"],
            name="fk_pipeline_destination_connection_id_connection",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["principal.id"], name="fk_pipeline_owner_id_principal", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["source_connection_id"],
            ["connection.id"],
            name="fk_pipeline_source_connection_id_connection",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name="fk_pipeline_workspace_id_workspace", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_pipeline_workspace_id_name"),
    )
    op.create_index("ix_pipeline_destination_connection_id", "pipeline", ["destination_connection_id"])
    op.create_index("ix_pipeline_source_connection_id", "pipeline", ["source_connection_id"])
    op.create_index("ix_pipeline_workspace_page", "pipeline", ["workspace_id", "created_at", "id"])
    op.create_table(
        "stream_state",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(500), nullable=False),
        sa.Column("state", JSON, nullable=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("run_id", sa.String(100), nullable=True),
        sa.Column("rolled_back_to", BIGINT_PK, nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("committed_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["pipeline.id"], name="fk_stream_state_pipeline_id_pipeline", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_stream_state"),
    )
    op.create_index("ix_stream_state_pipeline_stream", "stream_state", ["pipeline_id", "stream", "id"])
    op.create_table(
        "audit_log",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_name", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("resource_type", sa.String(50), nullable=False),
        sa.Column("resource_id", sa.String(100), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_actor_id", "audit_log", ["actor_id"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_resource", "audit_log", ["resource_type", "resource_id"])
    op.create_index("ix_audit_log_workspace_id_id", "audit_log", ["workspace_id", "id"])

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(PG_AUDIT_GUARD)
    elif dialect == "sqlite":
        for stmt in SQLITE_AUDIT_GUARD:
            op.execute(stmt)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # Dropping the table drops its triggers; the function goes explicitly.
        op.drop_table("audit_log")
        op.execute("DROP FUNCTION openfuse_audit_log_append_only()")
    else:
        op.drop_table("audit_log")
    op.drop_table("stream_state")
    op.drop_table("pipeline")
    op.drop_table("connection")
    op.drop_table("api_key")
    op.drop_table("principal")
    op.drop_table("workspace")
