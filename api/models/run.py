"""Runs of pipelines, as Dagster reports them. Nothing here is a table: Dagster's run storage is
the source of truth, and the API reads it through the webserver's GraphQL API
(:mod:`api.orchestrator`) on every request.

A run's per-stream results come from the materialization metadata its steps reported
(``rows_written`` and friends, see :mod:`openfuse_dagster.sync`), read back from Dagster's event log.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField

from api.pagination import Page

__all__ = [
    "Materialization",
    "RunCreate",
    "RunEvent",
    "RunEventPage",
    "RunPage",
    "RunPublic",
    "RunStatus",
    "RunSummary",
    "StepResult",
    "StepStatus",
]


class RunStatus(StrEnum):
    """Dagster's run status, lower-cased."""

    QUEUED = "queued"
    NOT_STARTED = "not_started"
    MANAGED = "managed"
    STARTING = "starting"
    STARTED = "started"
    SUSPENDED = "suspended"
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELING = "canceling"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED)


class StepStatus(StrEnum):
    """A step's status; ``pending`` until Dagster reports the step started."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"


class RunCreate(BaseModel):
    """What to run. An empty body runs every stream of the pipeline."""

    model_config = ConfigDict(extra="forbid")

    streams: list[str] | None = PydanticField(
        default=None, min_length=1, description="Stream names to sync; null syncs every stream."
    )
    full_refresh: bool = PydanticField(
        default=False, description="Reload incremental streams from scratch (overwrite and reset the cursor)."
    )
    partition_key: str | None = PydanticField(
        default=None,
        min_length=1,
        max_length=100,
        description="Partition to sync, for time-partitioned pipelines (e.g. `2024-01-31`).",
    )


class Materialization(BaseModel):
    asset_key: list[str] = PydanticField(description="Dagster asset key: the destination table.")
    partition: str | None
    metadata: dict[str, Any] = PydanticField(
        description="What the step reported: `rows_read`, `rows_written`, `rows_quarantined`, "
        "`bytes_written`, `duration_seconds`, `cursor_before`, `cursor_after`, ..."
    )


class StepResult(BaseModel):
    """One step of a run: one stream of the pipeline."""

    key: str = PydanticField(description="Dagster step key: `<job>__<table>`.")
    stream: str | None = PydanticField(description="The pipeline stream this step syncs, when known.")
    status: StepStatus
    started_at: datetime | None
    ended_at: datetime | None
    attempts: int
    rows_read: int | None = PydanticField(description="Summed over the step's materializations.")
    rows_written: int | None
    rows_quarantined: int | None
    bytes_written: int | None
    materializations: list[Materialization]


class RunSummary(BaseModel):
    id: str = PydanticField(description="Dagster's run id.")
    pipeline_id: uuid.UUID | None
    job_name: str
    status: RunStatus
    launched_by: uuid.UUID | None = PydanticField(
        description="Principal that launched it through the API; null for runs started in Dagster."
    )
    tags: dict[str, str]
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class RunPublic(RunSummary):
    """A run with its per-stream results (poll this until ``status`` is final)."""

    streams: list[str] = PydanticField(
        description="The streams it syncs, in the pipeline's order (a step key when the stream is gone)."
    )
    rows_written: int | None = PydanticField(description="Total over the steps that reported one.")
    steps: list[StepResult]


class RunPage(Page[RunSummary]):
    pass


class RunEvent(BaseModel):
    timestamp: datetime
    level: str = PydanticField(description="`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`.")
    type: str = PydanticField(description="Dagster event type, e.g. `STEP_SUCCESS`, `ASSET_MATERIALIZATION`.")
    message: str
    step_key: str | None


class RunEventPage(BaseModel):
    """A slice of a run's event log, oldest first. Unlike other lists, ``cursor`` is always set: pass
    it back to tail the log of a run that is still going."""

    items: list[RunEvent]
    cursor: str = PydanticField(description="Pass as `cursor` to get the events after these.")
    has_more: bool = PydanticField(description="More events are stored already.")
