"""Settings of one CDC pipeline (source side; the sinks have their own)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from openfuse_connectors.builtin.postgres.config import PostgresConfig

__all__ = ["CdcSettings"]

_SLOT = re.compile(r"^[a-z0-9_]{1,63}$")


class CdcSettings(BaseModel):
    """Where to capture from, which tables, and how to batch.

    The slot and the publication are named after the pipeline (``openfuse_<pipeline>``) unless
    given; one pipeline owns one slot and one publication.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    source: PostgresConfig
    tables: tuple[str, ...] = Field(min_length=1, description="`schema.table` of every captured table.")
    slot_name: str | None = Field(default=None, description="Logical replication slot (a-z, 0-9, _).")
    publication_name: str | None = None
    snapshot: Literal["initial", "never"] = Field(
        default="initial",
        description="initial: read every table at the slot's start position, then stream. never: "
        "stream only the changes made after the slot was created.",
    )
    max_batch_changes: int = Field(
        default=10_000, ge=1, description="Commit once this many changes are waiting (at a transaction end)."
    )
    max_batch_delay_ms: int = Field(
        default=200, ge=0, description="Commit at most this long after a transaction arrived (latency bound)."
    )
    chunk_changes: int = Field(
        default=5_000,
        ge=1,
        description="Changes handed to the sinks at once; a larger source transaction is written in "
        "chunks into one destination transaction (memory stays bounded).",
    )
    snapshot_chunk_rows: int = Field(default=10_000, ge=1)
    heartbeat_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="When no captured table changes, store and confirm the server's WAL position this "
        "often, so the slot does not hold WAL written by other tables and databases.",
    )
    status_interval_s: float = Field(default=10.0, gt=0, description="Standby status update period.")
    lag_threshold_bytes: int = Field(
        default=1 << 30,
        ge=0,
        description="The slot health check fails when the WAL written since the confirmed position is larger.",
    )
    retained_wal_threshold_bytes: int | None = Field(
        default=None,
        ge=0,
        description="The slot health check fails when the WAL the server keeps for the slot (from "
        "restart_lsn, held back by the oldest open source transaction) is larger; default 4 x "
        "lag_threshold_bytes.",
    )

    @field_validator("slot_name", "publication_name")
    @classmethod
    def _slot(cls, v: str | None) -> str | None:
        if v is not None and not _SLOT.match(v):
            raise ValueError(f"{v!r} must be 1-63 lowercase letters, digits or underscores")
        return v

    @property
    def slot(self) -> str:
        return self.slot_name or ("openfuse_" + self.pipeline.lower())[:63]

    @property
    def retained_threshold(self) -> int:
        if self.retained_wal_threshold_bytes is not None:
            return self.retained_wal_threshold_bytes
        return 4 * self.lag_threshold_bytes

    @property
    def publication(self) -> str:
        return self.publication_name or self.slot

    @classmethod
    def from_pipeline(cls, spec: Any, **options: Any) -> CdcSettings:
        """Settings for a :class:`~openfuse_connectors.spec.PipelineSpec` whose source is PostgreSQL.

        Every stream of the pipeline is captured; ``options`` are the other fields (a pipeline
        file's ``cdc:`` block once the spec has one).
        """
        from openfuse_connectors.config import validate_config

        if spec.source.connector != "postgres":
            from openfuse_connectors.errors import ConfigError

            raise ConfigError(
                "cdc needs a PostgreSQL source", field="source.connector", value=spec.source.connector
            )
        source = validate_config(PostgresConfig, spec.source.config, connector="postgres", role="source")
        assert isinstance(source, PostgresConfig)
        return cls(pipeline=spec.name, source=source, tables=tuple(s.name for s in spec.streams), **options)
