"""The ``cdc:`` block of a pipeline file (pydantic only: the spec can import it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SETTINGS_FIELDS", "CdcOptions"]

SETTINGS_FIELDS = ("slot_name", "publication_name", "snapshot", "max_batch_changes", "max_batch_delay_ms",
             "chunk_changes", "snapshot_chunk_rows", "heartbeat_interval_s", "status_interval_s",
             "lag_threshold_bytes", "retained_wal_threshold_bytes")  # fmt: skip


class CdcOptions(BaseModel):
    """The ``cdc:`` block of a pipeline file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slot_name: str | None = None
    publication_name: str | None = None
    snapshot: Literal["initial", "never"] = "initial"
    max_batch_changes: int = 10_000
    max_batch_delay_ms: int = 200
    chunk_changes: int = 5_000
    snapshot_chunk_rows: int = 10_000
    heartbeat_interval_s: float = 10.0
    status_interval_s: float = 10.0
    lag_threshold_bytes: int = 1 << 30
    retained_wal_threshold_bytes: int | None = None
    deletes: Literal["hard", "soft"] = Field(
        default="hard", description="SQL destinations: hard or soft deletes."
    )
    topic_prefix: str | None = Field(
        default=None, description="Kafka: topics <prefix>.<schema>.<table>; default the pipeline name."
    )
    tombstones: bool = Field(default=True, description="Kafka: a tombstone after each delete.")
    kafka: dict[str, Any] | None = Field(
        default=None,
        description="A Kafka cluster to publish to as well (same settings as the kafka connector).",
    )
    max_run_seconds: float | None = Field(
        default=300.0,
        gt=0,
        description="Dagster: one run of the pipeline's CDC job streams at most this long, commits and "
        "ends; the pipeline's sensor starts the next. None: a run streams until it is terminated.",
    )
    sensor_interval_s: int = Field(
        default=30, ge=1, description="Dagster: how often the CDC sensor checks that a run is in flight."
    )
